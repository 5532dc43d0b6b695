-- Operating the server: when a grant was last used, id_token signing keys, and the security log.

-- When tokens were last issued from the family (code exchange or refresh); NULL until the code
-- is exchanged, so unused codes' families are not shown as connected apps.
ALTER TABLE "oauthTokenFamily" ADD COLUMN last_used_at INTEGER;
CREATE INDEX "oauthTokenFamily_user_client_idx" ON "oauthTokenFamily" (user_id, client_id);

-- id_token signing keys. The private key is sealed (encrypted and authenticated) under the
-- operator's key-encryption secret; retired keys stay published until their tokens expire.
CREATE TABLE "oauthSigningKey" (
    kid                 TEXT    NOT NULL PRIMARY KEY,
    algorithm           TEXT    NOT NULL,
    private_key_sealed  TEXT    NOT NULL,
    public_jwk          TEXT    NOT NULL,
    created_at          INTEGER NOT NULL,
    retired_at          INTEGER
);

-- The append-only security log: no foreign keys (entries outlive what they name) and triggers
-- that refuse updates and deletes.
CREATE TABLE "auditLog" (
    id         INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    at         INTEGER NOT NULL,
    kind       TEXT    NOT NULL,
    user_id    TEXT,
    client_id  TEXT,
    ip         TEXT,
    detail     TEXT    NOT NULL
);
CREATE INDEX "auditLog_at_idx" ON "auditLog" (at);

CREATE TRIGGER "auditLog_no_update" BEFORE UPDATE ON "auditLog"
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

CREATE TRIGGER "auditLog_no_delete" BEFORE DELETE ON "auditLog"
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
