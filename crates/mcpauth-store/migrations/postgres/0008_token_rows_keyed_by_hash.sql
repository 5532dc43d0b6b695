-- Token rows keyed by their hash (issue 23). Access and refresh tokens are only ever looked up
-- by token_hash, but each row also had a random `id` as its PRIMARY KEY: two random-key B-trees
-- per insert. The `id` stays (the same values, no longer indexed); the unique index on token_hash
-- (NOT NULL) is the key, as on SQLite, and logical replication identifies rows by it. Rows stay
-- where they are.
ALTER TABLE "oauthAccessToken" DROP CONSTRAINT "oauthAccessToken_pkey";
ALTER TABLE "oauthAccessToken" REPLICA IDENTITY USING INDEX "oauthAccessToken_token_hash_key";
ALTER TABLE "oauthRefreshToken" DROP CONSTRAINT "oauthRefreshToken_pkey";
ALTER TABLE "oauthRefreshToken" REPLICA IDENTITY USING INDEX "oauthRefreshToken_token_hash_key";
