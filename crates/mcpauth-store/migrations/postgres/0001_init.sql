-- mcpauth schema, PostgreSQL dialect.
--
-- The same tables, columns, indexes and constraints as migrations/sqlite/0001_init.sql, in
-- PostgreSQL types. Table names follow Better Auth (always double-quoted: "user" is reserved);
-- columns are snake_case. Times are BIGINT seconds since the Unix epoch, flags BOOLEAN, JSON is
-- TEXT. Text columns use the "C" collation, so comparisons and ORDER BY are byte-wise exactly
-- as in SQLite (whatever the database's default collation) and index probes skip locale
-- rules. Secrets (session cookies, codes, tokens, client secrets) are stored only as their
-- hashes.

CREATE TABLE "user" (
    id              TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    name            TEXT COLLATE "C" NOT NULL,
    email           TEXT COLLATE "C" NOT NULL,
    email_verified  BOOLEAN NOT NULL DEFAULT FALSE,
    image           TEXT COLLATE "C",
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL,
    disabled        BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE UNIQUE INDEX "user_email_key" ON "user" (email);

-- A browser sign-in; token_hash is the hash of the cookie value.
CREATE TABLE "session" (
    id          TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    token_hash  TEXT COLLATE "C" NOT NULL,
    user_id     TEXT COLLATE "C" NOT NULL REFERENCES "user" (id) ON DELETE CASCADE,
    expires_at  BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    auth_time   BIGINT NOT NULL,
    ip_address  TEXT COLLATE "C",
    user_agent  TEXT COLLATE "C"
);
CREATE UNIQUE INDEX "session_token_hash_key" ON "session" (token_hash);
CREATE INDEX "session_user_id_idx" ON "session" (user_id);

-- Sign-in credentials. The password credential has provider_id = 'credential',
-- account_id = user_id and password = an argon2 PHC string.
CREATE TABLE "account" (
    id           TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    account_id   TEXT COLLATE "C" NOT NULL,
    provider_id  TEXT COLLATE "C" NOT NULL,
    user_id      TEXT COLLATE "C" NOT NULL REFERENCES "user" (id) ON DELETE CASCADE,
    password     TEXT COLLATE "C",
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE UNIQUE INDEX "account_provider_account_key" ON "account" (provider_id, account_id);
CREATE INDEX "account_user_id_idx" ON "account" (user_id);

-- Short-lived values under an identifier (pending authorizations, CSRF state, ...).
CREATE TABLE "verification" (
    id          TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    identifier  TEXT COLLATE "C" NOT NULL,
    value       TEXT COLLATE "C" NOT NULL,
    expires_at  BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX "verification_identifier_key" ON "verification" (identifier);

-- Registered OAuth clients. redirect_uris, grant_types and metadata are JSON text.
-- client_id is a named UNIQUE constraint (not just an index) so foreign keys can reference it.
CREATE TABLE "oauthApplication" (
    id                          TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    client_id                   TEXT COLLATE "C" NOT NULL,
    client_secret_hash          TEXT COLLATE "C",
    name                        TEXT COLLATE "C",
    redirect_uris               TEXT COLLATE "C" NOT NULL,
    token_endpoint_auth_method  TEXT COLLATE "C" NOT NULL,
    grant_types                 TEXT COLLATE "C" NOT NULL,
    logo_uri                    TEXT COLLATE "C",
    metadata                    TEXT COLLATE "C" NOT NULL,
    disabled                    BOOLEAN NOT NULL DEFAULT FALSE,
    skip_consent                BOOLEAN NOT NULL DEFAULT FALSE,
    created_at                  BIGINT  NOT NULL,
    updated_at                  BIGINT  NOT NULL,
    CONSTRAINT "oauthApplication_client_id_key" UNIQUE (client_id)
);

-- A user's standing approval of a client for a set of scopes.
CREATE TABLE "oauthConsent" (
    id             TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    user_id        TEXT COLLATE "C" NOT NULL REFERENCES "user" (id) ON DELETE CASCADE,
    client_id      TEXT COLLATE "C" NOT NULL
                   REFERENCES "oauthApplication" (client_id) ON DELETE CASCADE,
    scopes         TEXT COLLATE "C" NOT NULL,
    consent_given  BOOLEAN NOT NULL DEFAULT TRUE,
    created_at     BIGINT  NOT NULL,
    updated_at     BIGINT  NOT NULL
);
CREATE UNIQUE INDEX "oauthConsent_user_client_key" ON "oauthConsent" (user_id, client_id);
CREATE INDEX "oauthConsent_client_id_idx" ON "oauthConsent" (client_id);

-- One grant: every access and refresh token descending from one authorization code.
-- Revoking the family (revoked_at) kills all of them.
CREATE TABLE "oauthTokenFamily" (
    id          TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    client_id   TEXT COLLATE "C" NOT NULL
                REFERENCES "oauthApplication" (client_id) ON DELETE CASCADE,
    user_id     TEXT COLLATE "C" NOT NULL REFERENCES "user" (id) ON DELETE CASCADE,
    scopes      TEXT COLLATE "C" NOT NULL,
    resource    TEXT COLLATE "C" NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX "oauthTokenFamily_client_id_idx" ON "oauthTokenFamily" (client_id);
CREATE INDEX "oauthTokenFamily_user_id_idx" ON "oauthTokenFamily" (user_id);

-- Authorization codes; used_at is set exactly once, by the redeeming exchange.
CREATE TABLE "oauthAuthorizationCode" (
    code_hash       TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    client_id       TEXT COLLATE "C" NOT NULL
                    REFERENCES "oauthApplication" (client_id) ON DELETE CASCADE,
    user_id         TEXT COLLATE "C" NOT NULL REFERENCES "user" (id) ON DELETE CASCADE,
    session_id      TEXT COLLATE "C" NOT NULL,
    redirect_uri    TEXT COLLATE "C" NOT NULL,
    scopes          TEXT COLLATE "C" NOT NULL,
    code_challenge  TEXT COLLATE "C",
    resource        TEXT COLLATE "C" NOT NULL,
    nonce           TEXT COLLATE "C",
    auth_time       BIGINT NOT NULL,
    family_id       TEXT COLLATE "C" NOT NULL
                    REFERENCES "oauthTokenFamily" (id) ON DELETE CASCADE,
    expires_at      BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    used_at         BIGINT
);
CREATE INDEX "oauthAuthorizationCode_client_id_idx" ON "oauthAuthorizationCode" (client_id);
CREATE INDEX "oauthAuthorizationCode_user_id_idx" ON "oauthAuthorizationCode" (user_id);
CREATE INDEX "oauthAuthorizationCode_family_id_idx" ON "oauthAuthorizationCode" (family_id);

-- Issued access tokens. Looked up by token_hash on every protected request.
CREATE TABLE "oauthAccessToken" (
    id          TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    token_hash  TEXT COLLATE "C" NOT NULL,
    family_id   TEXT COLLATE "C" NOT NULL
                REFERENCES "oauthTokenFamily" (id) ON DELETE CASCADE,
    client_id   TEXT COLLATE "C" NOT NULL
                REFERENCES "oauthApplication" (client_id) ON DELETE CASCADE,
    user_id     TEXT COLLATE "C" NOT NULL REFERENCES "user" (id) ON DELETE CASCADE,
    scopes      TEXT COLLATE "C" NOT NULL,
    audience    TEXT COLLATE "C" NOT NULL,
    expires_at  BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX "oauthAccessToken_token_hash_key" ON "oauthAccessToken" (token_hash);
CREATE INDEX "oauthAccessToken_family_id_idx" ON "oauthAccessToken" (family_id);
CREATE INDEX "oauthAccessToken_client_id_idx" ON "oauthAccessToken" (client_id);
CREATE INDEX "oauthAccessToken_user_id_idx" ON "oauthAccessToken" (user_id);

-- Issued refresh tokens. rotated_at is set exactly once, together with retry_response (the
-- successor's token response sealed under this token), by the rotating exchange.
CREATE TABLE "oauthRefreshToken" (
    id              TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    token_hash      TEXT COLLATE "C" NOT NULL,
    family_id       TEXT COLLATE "C" NOT NULL
                    REFERENCES "oauthTokenFamily" (id) ON DELETE CASCADE,
    client_id       TEXT COLLATE "C" NOT NULL
                    REFERENCES "oauthApplication" (client_id) ON DELETE CASCADE,
    user_id         TEXT COLLATE "C" NOT NULL REFERENCES "user" (id) ON DELETE CASCADE,
    scopes          TEXT COLLATE "C" NOT NULL,
    resource        TEXT COLLATE "C" NOT NULL,
    expires_at      BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    rotated_at      BIGINT,
    retry_response  TEXT COLLATE "C"
);
CREATE UNIQUE INDEX "oauthRefreshToken_token_hash_key" ON "oauthRefreshToken" (token_hash);
CREATE INDEX "oauthRefreshToken_family_id_idx" ON "oauthRefreshToken" (family_id);
CREATE INDEX "oauthRefreshToken_client_id_idx" ON "oauthRefreshToken" (client_id);
CREATE INDEX "oauthRefreshToken_user_id_idx" ON "oauthRefreshToken" (user_id);

-- Server-wide settings; key 'server_secret' holds the signing secret shared by all instances.
CREATE TABLE "mcpauthSetting" (
    key    TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    value  TEXT COLLATE "C" NOT NULL
);
