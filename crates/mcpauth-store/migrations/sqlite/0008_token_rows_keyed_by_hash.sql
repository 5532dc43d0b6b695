-- Token rows keyed by their hash (issue 23). Access and refresh tokens are only ever looked up
-- by token_hash, but each row also had a random `id` as its PRIMARY KEY: two random-key B-trees
-- per insert (the id's and the hash's), each dirtying a random leaf page the writer appends to
-- the WAL. The `id` stays (the same values, no longer indexed); the unique token_hash index is the
-- key, and rows are appended to the table in insertion order. A PRIMARY KEY cannot be dropped in
-- SQLite, so both tables are rebuilt, their rows copied (nothing references them: dropping the old
-- tables cascades nothing).
CREATE TABLE "oauthAccessToken_0008" (
    id          TEXT    NOT NULL,
    token_hash  TEXT    NOT NULL,
    family_id   TEXT    NOT NULL REFERENCES "oauthTokenFamily" (id) ON DELETE CASCADE,
    client_id   TEXT    NOT NULL REFERENCES "oauthApplication" (client_id) ON DELETE CASCADE,
    user_id     TEXT    NOT NULL REFERENCES "user" (id) ON DELETE CASCADE,
    scopes      TEXT    NOT NULL,
    audience    TEXT    NOT NULL,
    expires_at  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
);
INSERT INTO "oauthAccessToken_0008"
       (id, token_hash, family_id, client_id, user_id, scopes, audience, expires_at, created_at)
SELECT id, token_hash, family_id, client_id, user_id, scopes, audience, expires_at, created_at
  FROM "oauthAccessToken";
DROP TABLE "oauthAccessToken";
ALTER TABLE "oauthAccessToken_0008" RENAME TO "oauthAccessToken";
CREATE UNIQUE INDEX "oauthAccessToken_token_hash_key" ON "oauthAccessToken" (token_hash);
CREATE INDEX "oauthAccessToken_family_id_idx" ON "oauthAccessToken" (family_id);
CREATE INDEX "oauthAccessToken_client_id_idx" ON "oauthAccessToken" (client_id);
CREATE INDEX "oauthAccessToken_user_id_idx" ON "oauthAccessToken" (user_id);

CREATE TABLE "oauthRefreshToken_0008" (
    id              TEXT    NOT NULL,
    token_hash      TEXT    NOT NULL,
    family_id       TEXT    NOT NULL REFERENCES "oauthTokenFamily" (id) ON DELETE CASCADE,
    client_id       TEXT    NOT NULL REFERENCES "oauthApplication" (client_id) ON DELETE CASCADE,
    user_id         TEXT    NOT NULL REFERENCES "user" (id) ON DELETE CASCADE,
    scopes          TEXT    NOT NULL,
    resource        TEXT    NOT NULL,
    expires_at      INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    rotated_at      INTEGER,
    retry_response  TEXT,
    generation      INTEGER NOT NULL DEFAULT 0
);
INSERT INTO "oauthRefreshToken_0008"
       (id, token_hash, family_id, client_id, user_id, scopes, resource, expires_at, created_at,
        rotated_at, retry_response, generation)
SELECT id, token_hash, family_id, client_id, user_id, scopes, resource, expires_at, created_at,
       rotated_at, retry_response, generation
  FROM "oauthRefreshToken";
DROP TABLE "oauthRefreshToken";
ALTER TABLE "oauthRefreshToken_0008" RENAME TO "oauthRefreshToken";
CREATE UNIQUE INDEX "oauthRefreshToken_token_hash_key" ON "oauthRefreshToken" (token_hash);
CREATE INDEX "oauthRefreshToken_family_id_idx" ON "oauthRefreshToken" (family_id);
CREATE INDEX "oauthRefreshToken_client_id_idx" ON "oauthRefreshToken" (client_id);
CREATE INDEX "oauthRefreshToken_user_id_idx" ON "oauthRefreshToken" (user_id);
