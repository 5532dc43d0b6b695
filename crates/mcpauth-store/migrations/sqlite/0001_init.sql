-- mcpauth schema, SQLite dialect.
--
-- Table names follow Better Auth (always double-quoted: "user" is reserved in PostgreSQL);
-- columns are snake_case. Times are INTEGER seconds since the Unix epoch, booleans INTEGER 0/1,
-- JSON is TEXT. Secrets (session cookies, codes, tokens, client secrets) are stored only as
-- their hashes.
--
-- Written to port to PostgreSQL by changing types only: INTEGER times -> BIGINT,
-- INTEGER booleans -> BOOLEAN (and their DEFAULT 0/1 -> FALSE/TRUE), JSON TEXT -> TEXT or JSONB.

CREATE TABLE "user" (
    id              TEXT    NOT NULL PRIMARY KEY,
    name            TEXT    NOT NULL,
    email           TEXT    NOT NULL,
    email_verified  INTEGER NOT NULL DEFAULT 0,
    image           TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    disabled        INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX "user_email_key" ON "user" (email);

-- A browser sign-in; token_hash is the hash of the cookie value.
CREATE TABLE "session" (
    id          TEXT    NOT NULL PRIMARY KEY,
    token_hash  TEXT    NOT NULL,
    user_id     TEXT    NOT NULL REFERENCES "user" (id) ON DELETE CASCADE,
    expires_at  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    auth_time   INTEGER NOT NULL,
    ip_address  TEXT,
    user_agent  TEXT
);
CREATE UNIQUE INDEX "session_token_hash_key" ON "session" (token_hash);
CREATE INDEX "session_user_id_idx" ON "session" (user_id);

-- Sign-in credentials. The password credential has provider_id = 'credential',
-- account_id = user_id and password = an argon2 PHC string.
CREATE TABLE "account" (
    id           TEXT    NOT NULL PRIMARY KEY,
    account_id   TEXT    NOT NULL,
    provider_id  TEXT    NOT NULL,
    user_id      TEXT    NOT NULL REFERENCES "user" (id) ON DELETE CASCADE,
    password     TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE UNIQUE INDEX "account_provider_account_key" ON "account" (provider_id, account_id);
CREATE INDEX "account_user_id_idx" ON "account" (user_id);

-- Short-lived values under an identifier (pending authorizations, CSRF state, ...).
CREATE TABLE "verification" (
    id          TEXT    NOT NULL PRIMARY KEY,
    identifier  TEXT    NOT NULL,
    value       TEXT    NOT NULL,
    expires_at  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX "verification_identifier_key" ON "verification" (identifier);

-- Registered OAuth clients. redirect_uris, grant_types and metadata are JSON text.
-- client_id is a named UNIQUE constraint (not just an index) so foreign keys can reference it
-- on PostgreSQL as well.
CREATE TABLE "oauthApplication" (
    id                          TEXT    NOT NULL PRIMARY KEY,
    client_id                   TEXT    NOT NULL,
    client_secret_hash          TEXT,
    name                        TEXT,
    redirect_uris               TEXT    NOT NULL,
    token_endpoint_auth_method  TEXT    NOT NULL,
    grant_types                 TEXT    NOT NULL,
    logo_uri                    TEXT,
    metadata                    TEXT    NOT NULL,
    disabled                    INTEGER NOT NULL DEFAULT 0,
    skip_consent                INTEGER NOT NULL DEFAULT 0,
    created_at                  INTEGER NOT NULL,
    updated_at                  INTEGER NOT NULL,
    CONSTRAINT "oauthApplication_client_id_key" UNIQUE (client_id)
);

-- A user's standing approval of a client for a set of scopes.
CREATE TABLE "oauthConsent" (
    id             TEXT    NOT NULL PRIMARY KEY,
    user_id        TEXT    NOT NULL REFERENCES "user" (id) ON DELETE CASCADE,
    client_id      TEXT    NOT NULL REFERENCES "oauthApplication" (client_id) ON DELETE CASCADE,
    scopes         TEXT    NOT NULL,
    consent_given  INTEGER NOT NULL DEFAULT 1,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
CREATE UNIQUE INDEX "oauthConsent_user_client_key" ON "oauthConsent" (user_id, client_id);
CREATE INDEX "oauthConsent_client_id_idx" ON "oauthConsent" (client_id);

-- One grant: every access and refresh token descending from one authorization code.
-- Revoking the family (revoked_at) kills all of them.
CREATE TABLE "oauthTokenFamily" (
    id          TEXT    NOT NULL PRIMARY KEY,
    client_id   TEXT    NOT NULL REFERENCES "oauthApplication" (client_id) ON DELETE CASCADE,
    user_id     TEXT    NOT NULL REFERENCES "user" (id) ON DELETE CASCADE,
    scopes      TEXT    NOT NULL,
    resource    TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE INDEX "oauthTokenFamily_client_id_idx" ON "oauthTokenFamily" (client_id);
CREATE INDEX "oauthTokenFamily_user_id_idx" ON "oauthTokenFamily" (user_id);

-- Authorization codes; used_at is set exactly once, by the redeeming exchange.
CREATE TABLE "oauthAuthorizationCode" (
    code_hash       TEXT    NOT NULL PRIMARY KEY,
    client_id       TEXT    NOT NULL REFERENCES "oauthApplication" (client_id) ON DELETE CASCADE,
    user_id         TEXT    NOT NULL REFERENCES "user" (id) ON DELETE CASCADE,
    session_id      TEXT    NOT NULL,
    redirect_uri    TEXT    NOT NULL,
    scopes          TEXT    NOT NULL,
    code_challenge  TEXT,
    resource        TEXT    NOT NULL,
    nonce           TEXT,
    auth_time       INTEGER NOT NULL,
    family_id       TEXT    NOT NULL REFERENCES "oauthTokenFamily" (id) ON DELETE CASCADE,
    expires_at      INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    used_at         INTEGER
);
CREATE INDEX "oauthAuthorizationCode_client_id_idx" ON "oauthAuthorizationCode" (client_id);
CREATE INDEX "oauthAuthorizationCode_user_id_idx" ON "oauthAuthorizationCode" (user_id);
CREATE INDEX "oauthAuthorizationCode_family_id_idx" ON "oauthAuthorizationCode" (family_id);

-- Issued access tokens. Looked up by token_hash on every protected request.
CREATE TABLE "oauthAccessToken" (
    id          TEXT    NOT NULL PRIMARY KEY,
    token_hash  TEXT    NOT NULL,
    family_id   TEXT    NOT NULL REFERENCES "oauthTokenFamily" (id) ON DELETE CASCADE,
    client_id   TEXT    NOT NULL REFERENCES "oauthApplication" (client_id) ON DELETE CASCADE,
    user_id     TEXT    NOT NULL REFERENCES "user" (id) ON DELETE CASCADE,
    scopes      TEXT    NOT NULL,
    audience    TEXT    NOT NULL,
    expires_at  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX "oauthAccessToken_token_hash_key" ON "oauthAccessToken" (token_hash);
CREATE INDEX "oauthAccessToken_family_id_idx" ON "oauthAccessToken" (family_id);
CREATE INDEX "oauthAccessToken_client_id_idx" ON "oauthAccessToken" (client_id);
CREATE INDEX "oauthAccessToken_user_id_idx" ON "oauthAccessToken" (user_id);

-- Issued refresh tokens. rotated_at is set exactly once, together with retry_response (the
-- successor's token response sealed under this token), by the rotating exchange.
CREATE TABLE "oauthRefreshToken" (
    id              TEXT    NOT NULL PRIMARY KEY,
    token_hash      TEXT    NOT NULL,
    family_id       TEXT    NOT NULL REFERENCES "oauthTokenFamily" (id) ON DELETE CASCADE,
    client_id       TEXT    NOT NULL REFERENCES "oauthApplication" (client_id) ON DELETE CASCADE,
    user_id         TEXT    NOT NULL REFERENCES "user" (id) ON DELETE CASCADE,
    scopes          TEXT    NOT NULL,
    resource        TEXT    NOT NULL,
    expires_at      INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    rotated_at      INTEGER,
    retry_response  TEXT
);
CREATE UNIQUE INDEX "oauthRefreshToken_token_hash_key" ON "oauthRefreshToken" (token_hash);
CREATE INDEX "oauthRefreshToken_family_id_idx" ON "oauthRefreshToken" (family_id);
CREATE INDEX "oauthRefreshToken_client_id_idx" ON "oauthRefreshToken" (client_id);
CREATE INDEX "oauthRefreshToken_user_id_idx" ON "oauthRefreshToken" (user_id);

-- Server-wide settings; key 'server_secret' holds the signing secret shared by all instances.
CREATE TABLE "mcpauthSetting" (
    key    TEXT NOT NULL PRIMARY KEY,
    value  TEXT NOT NULL
);
