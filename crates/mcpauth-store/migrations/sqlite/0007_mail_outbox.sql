-- The mail outbox (password reset and verification mail): a mail is written in the transaction
-- that stores its token, and deleted once the mail server accepted it, so that no mail is lost
-- to a crash, a restart or a failing mail server. The body carries the link with the token,
-- which is acceptable for the same reason the mail itself is: the row lives at most as long as
-- the token (an hour), only until it is sent, and the database already holds everything a
-- token would give access to. A claim leases a row (claimed_until) so that one instance sends
-- it; failed_at marks a mail given up after its last attempt.
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
