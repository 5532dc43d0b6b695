-- Fewer index pages per issued token (issue 23; the SQLite migration of the same number says
-- why). Access tokens keep only the token_hash key, plus expires_at for the purge, and no foreign
-- keys: an access token is valid only through the joins of its lookup, and its row goes at its
-- expiry or with its user or client (deleted with them explicitly). Refresh tokens keep their
-- family's cascade; their user and client reach them through the family.
ALTER TABLE "oauthAccessToken"
    DROP CONSTRAINT "oauthAccessToken_family_id_fkey",
    DROP CONSTRAINT "oauthAccessToken_client_id_fkey",
    DROP CONSTRAINT "oauthAccessToken_user_id_fkey";
DROP INDEX "oauthAccessToken_family_id_idx";
DROP INDEX "oauthAccessToken_client_id_idx";
DROP INDEX "oauthAccessToken_user_id_idx";
CREATE INDEX "oauthAccessToken_expires_at_idx" ON "oauthAccessToken" (expires_at);
ALTER TABLE "oauthRefreshToken"
    DROP CONSTRAINT "oauthRefreshToken_client_id_fkey",
    DROP CONSTRAINT "oauthRefreshToken_user_id_fkey";
DROP INDEX "oauthRefreshToken_client_id_idx";
DROP INDEX "oauthRefreshToken_user_id_idx";
