-- Identifiers that may be used once, shared by every instance on the database: the `jti` of a
-- DPoP proof, of a private_key_jwt client assertion, of an ID-JAG. The key names the kind and
-- the issuer it is unique for (e.g. `dpop:<thumbprint>:<jti>`). A use is one
-- INSERT … ON CONFLICT DO NOTHING: of concurrent uses of one key, on any instance, exactly one
-- inserts. A row is kept until the thing it names could no longer be accepted anyway
-- (expires_at), then purge_expired deletes it.
CREATE TABLE "mcpauthOneTimeId" (
    key         TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX "mcpauthOneTimeId_expires_at_idx" ON "mcpauthOneTimeId" (expires_at);
