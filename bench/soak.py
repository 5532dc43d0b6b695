#!/usr/bin/env python3
"""Soak: a mixed workload against one `mcpauth serve` for a while, sampling its memory and open
file descriptors every 10 s (issue 13, BENCHMARKS.md "Soak").

    bench/soak.py --bin target/release/mcpauth [--minutes 10] [--workers 8] [--out soak.csv]

Each worker loops: register a public client (DCR), sign a new user up, authorize with PKCE
(consent approved through the JSON API), exchange the code, validate the access token
(get-session) five times, refresh twice, revoke. Python standard library only. The CSV has one
row per sample: seconds, VmRSS kB, open descriptors, flows completed, errors.
"""
import argparse, base64, hashlib, json, os, secrets, subprocess, sys, tempfile, threading, time
import http.client, urllib.parse

def req(conn, method, path, body=None, headers=None, form=False):
    headers = dict(headers or {})
    if body is not None:
        if form:
            body = urllib.parse.urlencode(body); headers["content-type"] = "application/x-www-form-urlencoded"
        else:
            body = json.dumps(body); headers["content-type"] = "application/json"
    conn.request(method, path, body=body, headers=headers)
    r = conn.getresponse()
    data = r.read()
    return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.msg.get_all("set-cookie") or [], data

def flow(host, port, base):
    conn = http.client.HTTPConnection(host, port, timeout=30)
    redirect = "http://localhost:9999/callback"
    s, _, _, d = req(conn, "POST", "/api/auth/mcp/register", {"redirect_uris": [redirect], "token_endpoint_auth_method": "none", "grant_types": ["authorization_code", "refresh_token"]})
    assert s == 201, (s, d)
    client_id = json.loads(d)["client_id"]
    email = f"soak-{secrets.token_hex(8)}@example.com"
    s, _, cookies, d = req(conn, "POST", "/api/auth/sign-up/email", {"email": email, "password": "soak password 123456", "name": "Soak"}, {"origin": base})
    assert s == 200, (s, d)
    cookie = "; ".join(c.split(";")[0] for c in cookies)
    verifier = secrets.token_urlsafe(32)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    q = urllib.parse.urlencode({"response_type": "code", "client_id": client_id, "redirect_uri": redirect, "scope": "mcp:tools", "state": "s", "code_challenge": challenge, "code_challenge_method": "S256"})
    s, h, _, _ = req(conn, "GET", "/api/auth/mcp/authorize?" + q, headers={"cookie": cookie})
    assert s == 302, s
    loc = h["location"]
    if "consent_code" in loc:
        cc = urllib.parse.parse_qs(urllib.parse.urlsplit(loc).query)["consent_code"][0]
        s, _, _, d = req(conn, "POST", "/api/auth/oauth2/consent", {"accept": True, "consent_code": cc}, {"origin": base, "cookie": cookie})
        assert s == 200, (s, d)
        loc = json.loads(d)["redirectURI"]
    code = urllib.parse.parse_qs(urllib.parse.urlsplit(loc).query)["code"][0]
    s, _, _, d = req(conn, "POST", "/api/auth/mcp/token", {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect, "client_id": client_id, "code_verifier": verifier}, form=True)
    assert s == 200, (s, d)
    tokens = json.loads(d)
    for _ in range(5):
        s, _, _, _ = req(conn, "GET", "/api/auth/mcp/get-session", headers={"authorization": "Bearer " + tokens["access_token"]})
        assert s == 200, s
    for _ in range(2):
        s, _, _, d = req(conn, "POST", "/api/auth/mcp/token", {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": client_id}, form=True)
        assert s == 200, (s, d)
        tokens = json.loads(d)
    s, _, _, _ = req(conn, "POST", "/api/auth/mcp/revoke", {"token": tokens["refresh_token"], "client_id": client_id}, form=True)
    assert s == 200, s
    conn.close()

def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", required=True)
    p.add_argument("--minutes", type=float, default=10)
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--out", default="soak.csv")
    a = p.parse_args()
    work = tempfile.mkdtemp(prefix="mcpauth-soak-")
    env = dict(os.environ, MCPAUTH_RATE_LIMITS__ENABLED="false", RUST_LOG="warn")
    server = subprocess.Popen([a.bin, "serve", "--bind", "127.0.0.1:0", "--database-url", f"sqlite://{work}/soak.db"], cwd=work, env=env, stdout=subprocess.PIPE, text=True)
    addr = None
    for line in server.stdout:
        if line.strip().startswith("Listening on:"):
            addr = line.split(":", 1)[1].strip(); break
    host, port = addr.rsplit(":", 1)
    base = f"http://localhost:{port}"
    stop = time.time() + a.minutes * 60
    counts = {"flows": 0, "errors": 0}
    lock = threading.Lock()
    def worker():
        while time.time() < stop:
            try:
                flow(host, int(port), base); k = "flows"
            except Exception as e:  # noqa: BLE001 - counted and shown
                k = "errors"; print("error:", repr(e)[:200], file=sys.stderr)
            with lock: counts[k] += 1
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(a.workers)]
    for t in threads: t.start()
    started = time.time()
    with open(a.out, "w") as out:
        out.write("seconds,rss_kb,fds,flows,errors\n")
        while True:
            rss = next(l.split()[1] for l in open(f"/proc/{server.pid}/status") if l.startswith("VmRSS:"))
            fds = len(os.listdir(f"/proc/{server.pid}/fd"))
            with lock: row = f"{int(time.time() - started)},{rss},{fds},{counts['flows']},{counts['errors']}"
            out.write(row + "\n"); out.flush(); print(row, flush=True)
            if time.time() >= stop: break
            time.sleep(10)
    for t in threads: t.join()
    server.terminate(); server.wait(timeout=30)

if __name__ == "__main__":
    main()
