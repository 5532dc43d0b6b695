-- Fewer index pages per issued token (issue 23). Each access token row had three more indexes
-- than its lookup needs (family_id, client_id, user_id, for the foreign keys' cascades), and each
-- refresh token row two (client_id, user_id): five index entries a grant, each on a page of its
-- own that the writer appends to the WAL, and with many users and grants, each a random page.
--
-- - Access tokens keep only the token_hash key, plus expires_at for the purge. No foreign keys:
--   an access token is valid only through the joins of its lookup (its family, client and user
--   rows), so one whose family, client or user is gone is dead at once; its row goes at its
--   expiry (an hour by default), or with its user or client (deleted with them explicitly).
-- - Refresh tokens keep family_id and its cascade (they live as long as their family); their user
--   and client reach them through the family (deleting either deletes its families).
-- SQLite cannot drop a foreign key: both tables are rebuilt, their rows copied (nothing
-- references them, so dropping the old tables cascades nothing).
CREATE TABLE "oauthAccessToken_0014" (
    id          TEXT    NOT NULL,
    token_hash  TEXT    NOT NULL,
    family_id   TEXT    NOT NULL,
    client_id   TEXT    NOT NULL,
    user_id     TEXT,
    scopes      TEXT    NOT NULL,
    audience    TEXT    NOT NULL,
    expires_at  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    dpop_jkt    TEXT
);
INSERT INTO "oauthAccessToken_0014"
       (id, token_hash, family_id, client_id, user_id, scopes, audience, expires_at, created_at,
        dpop_jkt)
SELECT id, token_hash, family_id, client_id, user_id, scopes, audience, expires_at, created_at,
       dpop_jkt
  FROM "oauthAccessToken";
DROP TABLE "oauthAccessToken";
ALTER TABLE "oauthAccessToken_0014" RENAME TO "oauthAccessToken";
CREATE UNIQUE INDEX "oauthAccessToken_token_hash_key" ON "oauthAccessToken" (token_hash);
CREATE INDEX "oauthAccessToken_expires_at_idx" ON "oauthAccessToken" (expires_at);

CREATE TABLE "oauthRefreshToken_0014" (
    id              TEXT    NOT NULL,
    token_hash      TEXT    NOT NULL,
    family_id       TEXT    NOT NULL REFERENCES "oauthTokenFamily" (id) ON DELETE CASCADE,
    client_id       TEXT    NOT NULL,
    user_id         TEXT    NOT NULL,
    scopes          TEXT    NOT NULL,
    resource        TEXT    NOT NULL,
    expires_at      INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    rotated_at      INTEGER,
    retry_response  TEXT,
    generation      INTEGER NOT NULL DEFAULT 0,
    dpop_jkt        TEXT
);
INSERT INTO "oauthRefreshToken_0014"
       (id, token_hash, family_id, client_id, user_id, scopes, resource, expires_at, created_at,
        rotated_at, retry_response, generation, dpop_jkt)
SELECT id, token_hash, family_id, client_id, user_id, scopes, resource, expires_at, created_at,
       rotated_at, retry_response, generation, dpop_jkt
  FROM "oauthRefreshToken";
DROP TABLE "oauthRefreshToken";
ALTER TABLE "oauthRefreshToken_0014" RENAME TO "oauthRefreshToken";
CREATE UNIQUE INDEX "oauthRefreshToken_token_hash_key" ON "oauthRefreshToken" (token_hash);
CREATE INDEX "oauthRefreshToken_family_id_idx" ON "oauthRefreshToken" (family_id);
