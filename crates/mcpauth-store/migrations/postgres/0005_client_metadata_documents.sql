-- Client ID Metadata Documents (CIMD): the client a fetched document describes lives in
-- "oauthApplication" under its URL (so consents, codes and tokens reference it like any client);
-- this row says when its document was fetched, until when it may be used without fetching
-- again, and the ETag to revalidate it with. Shared by every instance on the database.
CREATE TABLE "oauthClientMetadataDocument" (
    client_id   TEXT COLLATE "C" NOT NULL PRIMARY KEY
                REFERENCES "oauthApplication" (client_id) ON DELETE CASCADE,
    etag        TEXT COLLATE "C",
    fetched_at  BIGINT  NOT NULL,
    expires_at  BIGINT  NOT NULL
);
