-- Rate-limit counters that every instance on the database shares: one row per key (a limit
-- and the client address or account it counts) and fixed window. Counting is one upsert
-- (INSERT … ON CONFLICT DO UPDATE … RETURNING), atomic under SQLite's write lock;
-- purge_expired deletes windows once expires_at has passed.
CREATE TABLE "rateLimit" (
    key           TEXT    NOT NULL,
    window_start  INTEGER NOT NULL,
    count         INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    PRIMARY KEY (key, window_start)
);
CREATE INDEX "rateLimit_expires_at_idx" ON "rateLimit" (expires_at);
