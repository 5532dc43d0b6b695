-- Connected accounts (issue 19): a user's tokens at another service (GitHub, any OAuth 2.0 /
-- OpenID provider), one row per user and configured connection. The tokens are sealed under
-- the operator's vault key, whose id sits beside them (SECURITY V1); nothing here is a usable
-- token. `generation` grows with every change of the tokens or status, and a refresh is
-- claimed by one conditional UPDATE on (generation, refresh_claimed_until): of concurrent
-- claimers, on any instance, exactly one wins (V4). Deleting a user deletes their connections.
CREATE TABLE "mcpauthConnection" (
    user_id                TEXT COLLATE "C" NOT NULL REFERENCES "user" (id) ON DELETE CASCADE,
    connection_id          TEXT COLLATE "C" NOT NULL,
    key_id                 TEXT COLLATE "C" NOT NULL,
    access_token_sealed    TEXT COLLATE "C" NOT NULL,
    refresh_token_sealed   TEXT COLLATE "C",
    token_type             TEXT COLLATE "C" NOT NULL,
    expires_at             BIGINT,
    scopes                 TEXT COLLATE "C" NOT NULL,
    status                 TEXT COLLATE "C" NOT NULL,
    generation             BIGINT NOT NULL,
    refresh_claimed_until  BIGINT,
    created_at             BIGINT NOT NULL,
    updated_at             BIGINT NOT NULL,
    last_used_at           BIGINT,
    PRIMARY KEY (user_id, connection_id)
);
CREATE INDEX "mcpauthConnection_key_id_idx" ON "mcpauthConnection" (key_id);
