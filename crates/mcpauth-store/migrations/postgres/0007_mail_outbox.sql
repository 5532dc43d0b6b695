-- The mail outbox (password reset and verification mail): a mail is written in the transaction
-- that stores its token, and deleted once the mail server accepted it, so that no mail is lost
-- to a crash, a restart or a failing mail server. The body and link carry the token, which the
-- database otherwise keeps only hashed: the library stores both sealed (AEAD with the
-- key-encryption secret), never in the clear. A claim leases a row (claimed_until) so that one
-- instance sends it; failed_at marks a mail given up after its last attempt.
CREATE TABLE "mcpauthMailOutbox" (
    id               TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    recipient        TEXT COLLATE "C" NOT NULL,
    subject          TEXT COLLATE "C" NOT NULL,
    body             TEXT COLLATE "C" NOT NULL,
    link             TEXT COLLATE "C" NOT NULL,
    expires_at       BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    claimed_until    BIGINT,
    failed_at        BIGINT,
    last_error       TEXT COLLATE "C"
);
CREATE INDEX "mcpauthMailOutbox_due_idx" ON "mcpauthMailOutbox" (next_attempt_at);
