#!/usr/bin/env python3
"""Seed live access tokens straight into an mcpauth SQLite database (bench/run.sh, scale scenario).

    seed-tokens.py DB_FILE COUNT [--sample FILE --sample-size 1000]

Every seeded token is real and usable: a random 256-bit token (base64url, like mcpauth's own),
stored as mcpauth stores it (SHA-256, base64url, no padding) in "oauthAccessToken", each with its
own grant row in "oauthTokenFamily", for the user and client of the token already in the database
(the one bench/prep.mjs obtained through the real flow), with that token's scopes and audience,
unexpired (1 day). All rows are inserted in one transaction; indexes are maintained as usual.
Foreign keys hold (checked at the end with PRAGMA foreign_key_check on the seeded tables).

--sample writes the plaintext of SAMPLE_SIZE seeded tokens chosen at random (one per line), for the
"spread" variant of the validation scenario. The server may be running: SQLite's locking makes
the insert safe, and the WAL is checkpointed (TRUNCATE) at the end.
"""
import argparse
import base64
import hashlib
import os
import random
import sqlite3
import sys
import time


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("db")
    ap.add_argument("count", type=int)
    ap.add_argument("--sample")
    ap.add_argument("--sample-size", type=int, default=1000)
    a = ap.parse_args()

    t0 = time.monotonic()
    con = sqlite3.connect(a.db, timeout=60, isolation_level=None)
    con.execute("PRAGMA busy_timeout = 60000")
    con.execute("PRAGMA cache_size = -1000000")  # 1 GB page cache for the index inserts
    con.execute("PRAGMA foreign_keys = OFF")  # checked once at the end instead of per row
    row = con.execute(
        'SELECT family_id, client_id, user_id, scopes, audience FROM "oauthAccessToken" '
        "ORDER BY created_at LIMIT 1"
    ).fetchone()
    if row is None:
        print("seed-tokens: the database has no access token to copy user/client/audience from", file=sys.stderr)
        return 1
    _family, client_id, user_id, scopes, audience = row
    resource = con.execute(
        'SELECT resource FROM "oauthTokenFamily" WHERE id = ?', (_family,)
    ).fetchone()[0]
    now = int(time.time())
    expires = now + 86400

    n = a.count
    want_sample = set()
    if a.sample and n > 0:
        want_sample = set(random.sample(range(n), min(a.sample_size, n)))
    sample = []

    def families():
        for i in range(n):
            yield (f"seedfam{i:09d}", client_id, user_id, scopes, resource, now, now + 90 * 86400, now)

    def tokens():
        for i in range(n):
            token = b64url(os.urandom(32))
            if i in want_sample:
                sample.append(token)
            digest = b64url(hashlib.sha256(token.encode()).digest())
            yield (f"seedtok{i:09d}", digest, f"seedfam{i:09d}", client_id, user_id, scopes, audience, expires, now)

    con.execute("BEGIN IMMEDIATE")
    con.executemany(
        'INSERT INTO "oauthTokenFamily" (id, client_id, user_id, scopes, resource, created_at, '
        "expires_at, last_used_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        families(),
    )
    con.executemany(
        'INSERT INTO "oauthAccessToken" (id, token_hash, family_id, client_id, user_id, scopes, '
        "audience, expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        tokens(),
    )
    con.execute("COMMIT")
    t_insert = time.monotonic() - t0
    bad = con.execute('PRAGMA foreign_key_check("oauthAccessToken")').fetchall()
    bad += con.execute('PRAGMA foreign_key_check("oauthTokenFamily")').fetchall()
    if bad:
        print(f"seed-tokens: foreign key violations: {bad[:5]}", file=sys.stderr)
        return 1
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    live = con.execute(
        'SELECT count(*) FROM "oauthAccessToken" WHERE expires_at > ?', (now,)
    ).fetchone()[0]
    con.close()
    if a.sample:
        random.shuffle(sample)
        with open(a.sample, "w") as f:
            f.write("\n".join(sample) + "\n")
    print(
        f"seed-tokens: {n} tokens seeded in {t_insert:.1f} s ({time.monotonic() - t0:.1f} s with checks); "
        f"{live} live access tokens in {a.db} ({os.path.getsize(a.db) / 2**20:.0f} MiB)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
