-- Operating the server: when a grant was last used, id_token signing keys, and the security log.

-- When tokens were last issued from the family (code exchange or refresh); NULL until the code
-- is exchanged, so unused codes' families are not shown as connected apps.
ALTER TABLE "oauthTokenFamily" ADD COLUMN last_used_at BIGINT;
CREATE INDEX "oauthTokenFamily_user_client_idx" ON "oauthTokenFamily" (user_id, client_id);

-- id_token signing keys. The private key is sealed (encrypted and authenticated) under the
-- operator's key-encryption secret; retired keys stay published until their tokens expire.
CREATE TABLE "oauthSigningKey" (
    kid                 TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    algorithm           TEXT COLLATE "C" NOT NULL,
    private_key_sealed  TEXT COLLATE "C" NOT NULL,
    public_jwk          TEXT COLLATE "C" NOT NULL,
    created_at          BIGINT NOT NULL,
    retired_at          BIGINT
);

-- The append-only security log: no foreign keys (entries outlive what they name) and triggers
-- that refuse updates and deletes (and TRUNCATE, which skips row triggers).
CREATE TABLE "auditLog" (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         BIGINT NOT NULL,
    kind       TEXT COLLATE "C" NOT NULL,
    user_id    TEXT COLLATE "C",
    client_id  TEXT COLLATE "C",
    ip         TEXT COLLATE "C",
    detail     TEXT COLLATE "C" NOT NULL
);
CREATE INDEX "auditLog_at_idx" ON "auditLog" (at);

CREATE FUNCTION "auditLog_append_only"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END;
$$;

CREATE TRIGGER "auditLog_no_update" BEFORE UPDATE ON "auditLog"
    FOR EACH ROW EXECUTE FUNCTION "auditLog_append_only"();

CREATE TRIGGER "auditLog_no_delete" BEFORE DELETE ON "auditLog"
    FOR EACH ROW EXECUTE FUNCTION "auditLog_append_only"();

CREATE TRIGGER "auditLog_no_truncate" BEFORE TRUNCATE ON "auditLog"
    FOR EACH STATEMENT EXECUTE FUNCTION "auditLog_append_only"();
