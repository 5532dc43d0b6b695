-- The mail outbox (password reset and verification mail): a mail is written in the transaction
-- that stores its token, and deleted once the mail server accepted it, so that no mail is lost
-- to a crash, a restart or a failing mail server. The body and link carry the token, which the
-- database otherwise keeps only hashed: the library stores both sealed (AEAD with the
-- key-encryption secret), never in the clear. A claim leases a row (claimed_until) so that one
-- instance sends it; failed_at marks a mail given up after its last attempt.
CREATE TABLE "mcpauthMailOutbox" (
    id               TEXT NOT NULL PRIMARY KEY,
    recipient        TEXT NOT NULL,
    subject          TEXT NOT NULL,
    body             TEXT NOT NULL,
    link             TEXT NOT NULL,
    expires_at       INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    claimed_until    INTEGER,
    failed_at        INTEGER,
    last_error       TEXT
);
CREATE INDEX "mcpauthMailOutbox_due_idx" ON "mcpauthMailOutbox" (next_attempt_at);
