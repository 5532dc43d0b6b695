-- One counter that grows in the same transaction as every change that can end an access token
-- before its expiry (a token family revoked, a user or client disabled or deleted, grants
-- revoked). Servers that keep validated tokens in memory re-read it to learn that their copies
-- may be stale, whichever instance or process made the change. Revoking transactions update it
-- first, before any other row, so they always take its row lock in the same order.
CREATE TABLE "mcpauthRevocationEpoch" (
    id     BIGINT PRIMARY KEY CHECK (id = 1),
    epoch  BIGINT NOT NULL
);
INSERT INTO "mcpauthRevocationEpoch" (id, epoch) VALUES (1, 0);
