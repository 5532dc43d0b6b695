"""Interop: the official MCP Python SDK (PyPI `mcp`, pinned in requirements.txt) against mcpauth.

Starts its own `mcpauth serve` (port 0, temporary SQLite database, killed at the end even on
failure), signs a user up, then lets the SDK's own OAuth client (`OAuthClientProvider`) do the
whole flow: 401 → protected resource metadata → AS metadata → dynamic registration → authorize →
token → MCP calls with the bearer token. The browser step is headless: an httpx2 client with a
cookie jar opens the authorization URL, fills and posts the real sign-in form and the real consent
form, and stops at the redirect to the redirect_uri, reading `code`, `state` and `iss` from it.

Every HTTP exchange the SDK makes goes through one recording httpx2 client, so the tests can check
what went over the wire (PKCE, `iss`, the `server/discover` probe, ...) and print it on failure.

Run through run.sh (it builds the venv); directly, from the venv: `MCPAUTH_BIN=... pytest -v`.
With PY_INTEROP_REPORT set to a folder, each test leaves its report there (every HTTP exchange the
SDK made, the browser's hops, the end of the server log); pytest prints it for a failed test.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp.client import Client, ClientSession
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS

REPO_ROOT = Path(__file__).resolve().parents[2]
# Where the headless browser "lands": nothing listens there, the UA stops at the redirect.
# A loopback redirect URI on a fixed port, as the SDK's own examples use.
REDIRECT_URI = "http://localhost:3030/callback"
PASSWORD = "correct horse battery staple 42"
TIMEOUT = 120  # seconds for one test's whole client run (the OAuth flow included)


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------


@dataclass
class Server:
    issuer: str  # e.g. http://localhost:PORT (what the banner prints; the SDK connects to this)
    listen: str  # e.g. 127.0.0.1:PORT
    log_path: Path

    @property
    def mcp_url(self) -> str:
        return f"{self.issuer}/api/mcp"

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"


def _server_binary() -> Path:
    configured = os.environ.get("MCPAUTH_BIN")
    if configured:
        path = Path(configured)
        if not path.is_absolute():
            path = (Path.cwd() / path) if path.exists() else (REPO_ROOT / path)
    else:
        target = Path(os.environ.get("CARGO_TARGET_DIR", REPO_ROOT / "target"))
        if not target.is_absolute():
            target = REPO_ROOT / target
        path = target / "debug" / "mcpauth"
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"mcpauth binary not found at {path} (run 'cargo build -p mcpauth-server' or set MCPAUTH_BIN)")
    return path


def _die_with_parent() -> None:
    """Child side of Popen: ask Linux to SIGTERM the server if this test process dies first (where
    the kernel honours it: gVisor does not; run.sh also stops pytest's process group at its end)."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        print("mcpauth ignored SIGTERM for 10 s: killing it", file=sys.stderr)
        proc.kill()
        proc.wait(timeout=10)


@contextlib.contextmanager
def run_server(*extra_args: str, config: str | None = None) -> Iterator[Server]:
    """`mcpauth serve` on port 0 with a temporary database (and `config` as its mcpauth.toml),
    until the block ends."""
    binary = _server_binary()
    work = Path(tempfile.mkdtemp(prefix="mcpauth-python-interop."))
    log_path = work / "server.log"
    args = [str(binary), "serve", "--bind", "127.0.0.1:0", "--database-url", f"sqlite://{work}/mcpauth.db"]
    if config is not None:
        (work / "mcpauth.toml").write_text(config)
        args += ["--config", str(work / "mcpauth.toml")]
    # The server reads every MCPAUTH_* variable as configuration and refuses unknown ones: pass on
    # none of ours (MCPAUTH_BIN...). It runs in the temp dir so that no ./mcpauth.toml is picked up.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCPAUTH_")}
    env.update({"MCPAUTH_RATE_LIMITS__ENABLED": "false", "NO_COLOR": "1"})
    # A SIGTERM to pytest (run.sh forwards one) must still run this fixture's teardown.
    previous_term = signal.signal(signal.SIGTERM, signal.default_int_handler)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [*args, *extra_args],
            cwd=work,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
    srv: Server | None = None
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"mcpauth exited ({proc.returncode}) before it was ready:\n{log_path.read_text()}")
            banner = log_path.read_text(errors="replace")
            issuer = re.search(r"^\s*Issuer:\s*(\S+)", banner, re.M)
            listen = re.search(r"^\s*Listening on:\s*(\S+)", banner, re.M)
            if issuer and listen:
                srv = Server(issuer=issuer.group(1).rstrip("/"), listen=listen.group(1), log_path=log_path)
                break
            time.sleep(0.1)
        if srv is None:
            pytest.fail(f"mcpauth printed no Issuer/Listening line within 60 s:\n{log_path.read_text()}")
        health = httpx2.get(f"http://{srv.listen}/healthz", timeout=5)
        assert health.status_code == 200 and health.text.strip() == "ok", health.text
        print(f"\nmcpauth ready at {srv.issuer} (listening on {srv.listen}), mcp {mcp_version()}")
        yield srv
    finally:
        _stop(proc)
        signal.signal(signal.SIGTERM, previous_term)
        if srv is not None and os.environ.get("KEEP_SERVER_LOG"):
            print(f"server log kept: {log_path}")
        else:
            shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    with run_server() as srv:
        yield srv


def mcp_version() -> str:
    from importlib.metadata import version

    return version("mcp")


@dataclass
class User:
    email: str
    password: str
    name: str
    id: str = ""


def sign_up(server: Server) -> User:
    """A new user, signed up through the account API."""
    u = User(email=f"py-{secrets.token_hex(4)}@example.com", password=PASSWORD, name="Python SDK")
    r = httpx2.post(
        f"{server.issuer}/api/auth/sign-up/email",
        json={"email": u.email, "password": u.password, "name": u.name},
        headers={"Origin": server.issuer},
        timeout=30,
    )
    assert r.status_code in (200, 201), f"sign-up: {r.status_code} {r.text}"
    u.id = r.json()["user"]["id"]
    assert u.id
    return u


@pytest.fixture(scope="session")
def user(server: Server) -> User:
    return sign_up(server)


# --------------------------------------------------------------------------------------------
# The headless browser
# --------------------------------------------------------------------------------------------


@dataclass
class Form:
    action: str | None
    method: str
    fields: list[tuple[str, str, str]] = field(default_factory=list)  # (tag/type, name, value)


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self._current: Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v or "") for k, v in attrs}
        if tag == "form":
            self._current = Form(action=a.get("action"), method=(a.get("method") or "get").lower())
            self.forms.append(self._current)
        elif self._current is not None and tag in ("input", "button") and a.get("name"):
            kind = a.get("type", "submit" if tag == "button" else "text").lower()
            self._current.fields.append((kind, a["name"], a.get("value", "")))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


@dataclass
class BrowserStep:
    """One authorization as the (headless) browser saw it."""

    authorization_url: str
    hops: list[str] = field(default_factory=list)
    callback_url: str | None = None

    @property
    def callback(self) -> dict[str, str]:
        assert self.callback_url, "no redirect to the redirect_uri"
        return {k: v[0] for k, v in parse_qs(urlsplit(self.callback_url).query).items()}


class HeadlessBrowser:
    """Follows the authorization URL like a browser: one cookie jar across authorizations (the
    session survives a step-up), fills the sign-in form, approves consent with accept=true, and
    stops at the redirect to the redirect_uri (nothing listens there)."""

    def __init__(self, user: User, redirect_uri: str) -> None:
        self.user = user
        self.redirect_uri = urlsplit(redirect_uri)
        self.cookies = httpx2.Cookies()
        self.steps: list[BrowserStep] = []
        self._pending: BrowserStep | None = None

    def _is_redirect_uri(self, url: str) -> bool:
        u = urlsplit(url)
        r = self.redirect_uri
        return (u.scheme, u.hostname, u.port, u.path) == (r.scheme, r.hostname, r.port, r.path)

    async def redirect_handler(self, authorization_url: str) -> None:
        step = BrowserStep(authorization_url)
        self.steps.append(step)
        headers = {"Accept": "text/html,application/xhtml+xml", "User-Agent": "mcpauth-interop-headless/1"}
        async with httpx2.AsyncClient(follow_redirects=False, cookies=self.cookies, timeout=30) as ua:
            method, url, body, page = "GET", authorization_url, None, None
            for _ in range(12):
                extra = {}
                if page is not None:  # a form post: a browser sends the page's origin (and referrer)
                    p = urlsplit(page)
                    extra = {"Origin": f"{p.scheme}://{p.netloc}", "Referer": page}
                resp = await ua.request(method, url, data=body, headers={**headers, **extra})
                step.hops.append(f"{method} {url} -> {resp.status_code}")
                if resp.is_redirect:
                    location = urljoin(url, resp.headers["location"])
                    if self._is_redirect_uri(location):
                        step.callback_url = location
                        self.cookies = ua.cookies  # keep the session for the next authorization
                        self._pending = step
                        return
                    method, url, body, page = "GET", location, None, None
                    continue
                if resp.status_code == 200 and "text/html" in resp.headers.get("content-type", ""):
                    page = url
                    url, body = self._fill(page, resp.text)
                    method = "POST"
                    continue
                raise AssertionError(
                    f"headless browser: unexpected {resp.status_code} at {url}: {resp.text[:300]}\n"
                    + "\n".join(step.hops)
                )
        raise AssertionError("headless browser: too many hops\n" + "\n".join(step.hops))

    def _fill(self, page_url: str, html: str) -> tuple[str, dict[str, str]]:
        parser = _FormParser()
        parser.feed(html)
        forms = [f for f in parser.forms if f.method == "post"]
        assert forms, f"headless browser: no POST form at {page_url}"
        form = forms[0]
        data: dict[str, str] = {}
        is_sign_in = any(kind == "password" for kind, _, _ in form.fields)
        for kind, name, value in form.fields:
            if kind in ("submit", "button", "reset", "image"):
                continue  # a browser sends only the button that was clicked
            if kind == "password":
                data[name] = self.user.password
            elif re.search(r"email|username|login", name, re.I) and kind != "hidden":
                data[name] = self.user.email
            else:
                data[name] = value  # hidden inputs: csrf_token, authorize_query, consent_code, ...
        if not is_sign_in:
            data["accept"] = "true"  # the consent form's "Allow" button
        return urljoin(page_url, form.action or page_url), data

    async def callback_handler(self) -> AuthorizationCodeResult:
        step, self._pending = self._pending, None
        assert step is not None, "callback_handler called without a completed redirect_handler"
        params = step.callback
        assert "error" not in params, f"authorization error: {params}"
        return AuthorizationCodeResult(code=params["code"], state=params.get("state"), iss=params.get("iss"))


# --------------------------------------------------------------------------------------------
# The SDK side: token storage, a recording HTTP client
# --------------------------------------------------------------------------------------------


class InMemoryTokenStorage:
    """`mcp.client.auth.TokenStorage` kept in memory."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


@dataclass
class Exchange:
    method: str
    url: str
    request_headers: dict[str, str]
    request_body: bytes
    status: int | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: bytes = b""

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.request_body.decode()).items()}

    def json_body(self) -> Any:
        return json.loads(self.request_body) if self.request_body else None

    def mcp_method(self) -> str | None:
        body = self.json_body() if self.method == "POST" and self.path.endswith("/api/mcp") else None
        return body.get("method") if isinstance(body, dict) else None

    def __str__(self) -> str:
        auth = " [Bearer]" if self.request_headers.get("authorization", "").startswith("Bearer ") else ""
        what = f" {self.mcp_method()}" if self.mcp_method() else ""
        return f"{self.method} {self.url}{what}{auth} -> {self.status}"


class Recorder:
    """httpx2 event hooks that keep every exchange of the SDK's client (bodies included)."""

    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []

    async def on_request(self, request: httpx2.Request) -> None:
        try:
            body = request.content
        except httpx2.RequestNotRead:  # a streamed upload (the SDK sends none)
            body = b"<streamed>"
        self.exchanges.append(Exchange(request.method, str(request.url), dict(request.headers), body))

    async def on_response(self, response: httpx2.Response) -> None:
        ex = next(e for e in reversed(self.exchanges) if e.status is None)
        ex.status = response.status_code
        ex.response_headers = dict(response.headers)
        if "text/event-stream" not in response.headers.get("content-type", ""):
            ex.response_body = await response.aread()

    def client(self, auth: httpx2.Auth) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(
            auth=auth,
            timeout=httpx2.Timeout(30.0, read=60.0),
            event_hooks={"request": [self.on_request], "response": [self.on_response]},
        )

    def find(self, path_suffix: str, method: str | None = None) -> list[Exchange]:
        return [e for e in self.exchanges if e.path.endswith(path_suffix) and (method is None or e.method == method)]

    def dump(self) -> str:
        return "\n".join(f"  {i:2d}. {e}" for i, e in enumerate(self.exchanges, 1))


@dataclass
class Harness:
    server: Server
    user: User
    storage: InMemoryTokenStorage
    browser: HeadlessBrowser
    recorder: Recorder
    provider: OAuthClientProvider
    notes: list[str] = field(default_factory=list)

    @contextlib.asynccontextmanager
    async def http(self) -> AsyncIterator[httpx2.AsyncClient]:
        async with self.recorder.client(self.provider) as client:
            yield client

    def report(self) -> str:
        steps = "\n".join(f"  authorization {i}: " + "\n    ".join(s.hops) for i, s in enumerate(self.browser.steps, 1))
        notes = "".join(f"note: {n}\n" for n in self.notes)
        return (
            f"{notes}SDK HTTP exchanges:\n{self.recorder.dump()}\nbrowser:\n{steps}\n"
            f"server log:\n{self.server.log_tail()}"
        )


def new_harness(server: Server, user: User, mcp_url: str) -> Harness:
    """The SDK's OAuth client for the MCP endpoint at `mcp_url`, with a headless browser."""
    storage = InMemoryTokenStorage()
    browser = HeadlessBrowser(user, REDIRECT_URI)
    provider = OAuthClientProvider(
        server_url=mcp_url,
        client_metadata=OAuthClientMetadata(
            client_name="mcpauth interop (Python SDK)",
            redirect_uris=[REDIRECT_URI],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
            # application_type defaults to "native" in the SDK (loopback redirect): left as is
        ),
        storage=storage,
        redirect_handler=browser.redirect_handler,
        callback_handler=browser.callback_handler,
    )
    return Harness(server, user, storage, browser, Recorder(), provider)


def save_report(h: Harness, request: pytest.FixtureRequest) -> None:
    report = f"[{request.node.name}]\n{h.report()}"
    print(f"\n{report}")  # shown by pytest when the test fails (or with -s)
    report_dir = os.environ.get("PY_INTEROP_REPORT")
    if report_dir:
        Path(report_dir).mkdir(parents=True, exist_ok=True)
        (Path(report_dir) / f"{request.node.name}.txt").write_text(report + "\n")


@pytest.fixture
def harness(server: Server, user: User, request: pytest.FixtureRequest) -> Iterator[Harness]:
    h = new_harness(server, user, server.mcp_url)
    yield h
    save_report(h, request)


def text_items(result: types.CallToolResult) -> list[str]:
    return [c.text for c in result.content if isinstance(c, types.TextContent)]


# --------------------------------------------------------------------------------------------
# Checks on what went over the wire
# --------------------------------------------------------------------------------------------


def check_oauth_flow(h: Harness, *, authorizations: int = 1) -> None:
    rec, srv = h.recorder, h.server

    # 1. the first MCP request went out without a token and got the 401 challenge
    first = rec.exchanges[0]
    assert first.path == "/api/mcp" and first.status == 401, f"first exchange: {first}"
    challenge = first.response_headers.get("www-authenticate", "")
    assert challenge.startswith("Bearer ") and "resource_metadata=" in challenge, challenge

    # 2./3. metadata, 4. registration
    assert [e.status for e in rec.find("/.well-known/oauth-protected-resource/api/mcp")][:1] == [200]
    assert [e.status for e in rec.find("/.well-known/oauth-authorization-server")][:1] == [200]
    registrations = rec.find("/register", "POST")
    assert len(registrations) == 1 and registrations[0].status == 201, [str(e) for e in registrations]
    reg = registrations[0].json_body()
    assert reg["application_type"] == "native" and reg["token_endpoint_auth_method"] == "none", reg
    client_id = h.storage.client_info.client_id if h.storage.client_info else None
    assert client_id

    # 5. authorization: PKCE S256, state, resource, iss on the callback
    assert len(h.browser.steps) == authorizations, f"{len(h.browser.steps)} authorizations"
    tokens = [e for e in rec.find("/token", "POST") if e.form().get("grant_type") == "authorization_code"]
    assert len(tokens) == authorizations, [str(e) for e in tokens]
    for step, token in zip(h.browser.steps, tokens, strict=True):
        q = {k: v[0] for k, v in parse_qs(urlsplit(step.authorization_url).query).items()}
        assert q["response_type"] == "code" and q["client_id"] == client_id
        assert q["redirect_uri"] == REDIRECT_URI
        assert q["code_challenge_method"] == "S256"
        assert len(q["code_challenge"]) == 43  # base64url(SHA-256) without padding
        assert q["resource"] == srv.mcp_url, q.get("resource")
        assert q["state"]
        cb = step.callback
        assert cb["state"] == q["state"]
        assert cb.get("iss") == srv.issuer, f"callback without the right iss: {step.callback_url}"
        # 6. the token request carries the 128-character verifier that matches the challenge
        form = token.form()
        verifier = form["code_verifier"]
        assert len(verifier) == 128, len(verifier)
        assert re.fullmatch(r"[A-Za-z0-9\-._~]{128}", verifier)
        challenge_of_verifier = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
        assert challenge_of_verifier.decode() == q["code_challenge"]
        assert form["code"] == cb["code"] and form["redirect_uri"] == REDIRECT_URI
        assert form["resource"] == srv.mcp_url and form["client_id"] == client_id
        assert token.status == 200, f"token: {token.status} {token.response_body!r}"
        assert token.response_headers.get("cache-control") == "no-store"
        body = json.loads(token.response_body)
        assert body["token_type"].lower() == "bearer" and body["access_token"] and body["expires_in"] > 0

    # 7. every MCP request after the flow carried the bearer token
    last_token_index = rec.exchanges.index(tokens[-1])
    for e in rec.exchanges[last_token_index + 1 :]:
        if e.path == "/api/mcp":
            assert e.request_headers.get("authorization", "").startswith("Bearer "), str(e)


async def check_echo_and_whoami(session: ClientSession, h: Harness) -> dict[str, Any]:
    """tools/list, echo, whoami; returns whoami's session JSON."""
    user = h.user
    client_id = h.storage.client_info.client_id if h.storage.client_info else "?"
    listed = await session.list_tools()
    names = {t.name for t in listed.tools}
    assert {"echo", "whoami", "admin_echo"} <= names, names

    echo = await session.call_tool("echo", {"message": "hello from the Python SDK"})
    assert not echo.is_error, echo
    texts = text_items(echo)
    assert texts[0] == "Tool echo: hello from the Python SDK", texts
    # the second item names the caller: the signed-up user, through the client the SDK registered
    assert len(texts) >= 2 and user.id in texts[1] and client_id in texts[1], texts

    whoami = await session.call_tool("whoami", {})
    assert not whoami.is_error, whoami
    who = json.loads(text_items(whoami)[0])
    flat = json.dumps(who)
    assert user.id in flat and client_id in flat, who
    return who


# --------------------------------------------------------------------------------------------
# The tests
# --------------------------------------------------------------------------------------------


def test_client_session_initialize(harness: Harness) -> None:
    """streamable_http_client + ClientSession, explicit initialize (the handshake-era path)."""
    h = harness

    async def main() -> types.InitializeResult:
        with anyio.fail_after(TIMEOUT):
            async with (
                h.http() as http_client,
                streamable_http_client(h.server.mcp_url, http_client=http_client) as (read, write),
                ClientSession(read, write) as session,
            ):
                init = await session.initialize()
                await check_echo_and_whoami(session, h)
                return init

    init = anyio.run(main)
    assert init.server_info.name, init
    check_oauth_flow(h)
    mcp_methods = [e.mcp_method() for e in h.recorder.exchanges if e.mcp_method()]
    assert mcp_methods[0] == "initialize" and "server/discover" not in mcp_methods, mcp_methods


def test_client_auto_mode_discover_probe(harness: Harness) -> None:
    """The high-level `mcp.Client` in its default mode ('auto'): it probes `server/discover`
    (at the newest modern version) before anything else and falls back to `initialize` only if
    the answer is not positive evidence of a modern server. The probe is the request that meets
    the 401, so the whole OAuth flow runs inside it."""
    h = harness

    async def main() -> tuple[str, bool]:
        with anyio.fail_after(TIMEOUT):
            async with h.http() as http_client:
                transport = streamable_http_client(h.server.mcp_url, http_client=http_client)
                async with Client(transport) as client:
                    await check_echo_and_whoami(client.session, h)
                    return client.protocol_version, client.session.discover_result is not None

    version, adopted_discover = anyio.run(main)

    check_oauth_flow(h)
    mcp_exchanges = [e for e in h.recorder.exchanges if e.mcp_method()]
    methods = [e.mcp_method() for e in mcp_exchanges]
    assert methods[0] == "server/discover" and mcp_exchanges[0].status == 401, methods
    probes = [e for e in mcp_exchanges if e.mcp_method() == "server/discover"]
    assert [e.status for e in probes][:1] == [401] and len(probes) >= 2, [str(e) for e in probes]
    probe = probes[1]  # the probe retried with the token
    assert probe.request_headers.get("authorization", "").startswith("Bearer ")
    h.notes.append(
        f"server/discover probe with the token: HTTP {probe.status}, "
        f"Mcp-Protocol-Version {probe.request_headers.get('mcp-protocol-version')!r}, "
        f"response {probe.response_body[:600].decode(errors='replace')}"
    )
    h.notes.append(
        f"negotiated {version}: "
        + ("adopted the discover result, no initialize" if adopted_discover else "fell back to initialize")
    )
    if adopted_discover:
        # the server answered discover with a modern version: no handshake at all
        assert version in MODERN_PROTOCOL_VERSIONS and "initialize" not in methods, (version, methods)
        assert probe.status == 200 and json.loads(probe.response_body)["result"]["supportedVersions"]
    else:
        assert version in HANDSHAKE_PROTOCOL_VERSIONS and "initialize" in methods, (version, methods)


def test_refresh_ahead_of_expiry(harness: Harness) -> None:
    """The SDK refreshes a token it believes expired before sending the request (it asked for
    offline_access): the refresh_token grant must work and the new access token must be accepted."""
    h = harness

    async def connect_and_echo(message: str) -> list[str]:
        async with (
            h.http() as http_client,
            streamable_http_client(h.server.mcp_url, http_client=http_client) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            return text_items(await session.call_tool("echo", {"message": message}))

    async def main() -> list[str]:
        with anyio.fail_after(TIMEOUT):
            await connect_and_echo("first")
            first = h.storage.tokens
            assert first is not None and first.refresh_token, f"no refresh token for offline_access: {first}"
            h.provider.context.token_expiry_time = time.time() - 1  # as if expires_in had passed
            texts = await connect_and_echo("after refresh")
            assert h.storage.tokens is not None and h.storage.tokens.access_token != first.access_token
            return texts

    texts = anyio.run(main)
    assert texts[0] == "Tool echo: after refresh", texts
    check_oauth_flow(h)  # one authorization only
    refreshes = [e for e in h.recorder.find("/token", "POST") if e.form().get("grant_type") == "refresh_token"]
    assert len(refreshes) == 1 and refreshes[0].status == 200, [str(e) for e in refreshes]
    assert refreshes[0].form().get("resource") == h.server.mcp_url
    assert refreshes[0].response_headers.get("cache-control") == "no-store"


def test_step_up_admin_echo(harness: Harness) -> None:
    """admin_echo needs mcp:admin: 403 insufficient_scope → the SDK re-authorizes with the union
    of the scopes (same browser session) → the retried call succeeds."""
    h = harness

    async def main() -> types.CallToolResult:
        with anyio.fail_after(TIMEOUT):
            async with (
                h.http() as http_client,
                streamable_http_client(h.server.mcp_url, http_client=http_client) as (read, write),
                ClientSession(read, write) as session,
            ):
                await session.initialize()
                return await session.call_tool("admin_echo", {"message": "step up"})

    result = anyio.run(main)
    assert not result.is_error, result
    assert text_items(result)[0] == "Tool admin_echo: step up", text_items(result)
    check_oauth_flow(h, authorizations=2)
    forbidden = [e for e in h.recorder.exchanges if e.path == "/api/mcp" and e.status == 403]
    assert forbidden, "admin_echo was never answered 403"
    assert 'error="insufficient_scope"' in forbidden[0].response_headers.get("www-authenticate", "")
    scopes = [set(parse_qs(urlsplit(s.authorization_url).query)["scope"][0].split()) for s in h.browser.steps]
    assert "mcp:tools" in scopes[0] and {"mcp:tools", "mcp:admin"} <= scopes[1], scopes
