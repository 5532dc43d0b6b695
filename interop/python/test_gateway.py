"""The gateway with a real Python upstream: mcpauth in front of an MCP server on the official
Python SDK (upstream_server.py: MCPServer, streamable-http, stateful, SSE answers) that knows
nothing of OAuth, reached by the official Python SDK client, which does the whole OAuth flow
against mcpauth for the upstream's resource (`{issuer}/mcp/py`).

Checks: the upstream never sees the client's `Authorization` header but sees mcpauth's
`X-MCPAuth-*` identity (SECURITY M4); `tools/list` (an SSE answer) shows only the tools the token
may call; progress notifications stream through while the tool is still running (no buffering);
a tool reserved to a scope makes the SDK step up.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import mcp_types as types
import pytest
from mcp.client import ClientSession
from mcp.client.streamable_http import streamable_http_client

from test_python_sdk import (
    TIMEOUT,
    Harness,
    Server,
    User,
    _die_with_parent,
    _stop,
    new_harness,
    run_server,
    save_report,
    sign_up,
    text_items,
)

HERE = Path(__file__).resolve().parent
PATH = "/mcp/py"
ADMIN_SCOPE = "py:admin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def python_upstream() -> Iterator[str]:
    """upstream_server.py on a free port, until the block ends; its MCP URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "upstream_server.py"), str(port)],
        stdin=subprocess.DEVNULL,
        preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the Python upstream exited ({proc.returncode})")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if time.monotonic() > deadline:
                pytest.fail("the Python upstream did not listen within 30 s")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def gateway() -> Iterator[Server]:
    with python_upstream() as url:
        config = f"""
[[upstreams]]
path = "{PATH}"
url = "{url}"
name = "Python upstream"
scopes = ["mcp:tools"]
tool_scopes = {{ admin_op = ["{ADMIN_SCOPE}"] }}
"""
        with run_server(config=config) as srv:
            yield srv


@pytest.fixture
def gateway_harness(gateway: Server, request: pytest.FixtureRequest) -> Iterator[Harness]:
    user: User = sign_up(gateway)
    h = new_harness(gateway, user, f"{gateway.issuer}{PATH}")
    yield h
    save_report(h, request)


def test_python_client_through_the_gateway_to_a_python_upstream(gateway_harness: Harness) -> None:
    h = gateway_harness
    url = f"{h.server.issuer}{PATH}"
    progress: list[tuple[float, float]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((time.monotonic(), value))

    async def main() -> tuple[list[str], dict[str, str], float, types.CallToolResult]:
        with anyio.fail_after(TIMEOUT):
            async with (
                h.http() as http_client,
                streamable_http_client(url, http_client=http_client) as (read, write),
                ClientSession(read, write) as session,
            ):
                await session.initialize()
                listed = await session.list_tools()
                seen = json.loads(text_items(await session.call_tool("headers", {}))[0])
                result = await session.call_tool("countdown", {"steps": 3}, progress_callback=on_progress)
                return [t.name for t in listed.tools], seen, time.monotonic(), result

    names, seen, finished, countdown = anyio.run(main)

    # OAuth for the upstream's own resource
    step = h.browser.steps[0]
    assert f"resource={url.replace(':', '%3A').replace('/', '%2F')}" in step.authorization_url, step.authorization_url
    assert any(e.path == f"/.well-known/oauth-protected-resource{PATH}" and e.status == 200 for e in h.recorder.exchanges)
    # tools/list filtered (the upstream answers with SSE)
    assert sorted(names) == ["countdown", "echo", "headers"], names
    # M4: no token passthrough, mcpauth's identity instead
    assert "authorization" not in seen, seen
    assert seen.get("x-mcpauth-user-id") == h.user.id, seen
    assert seen.get("x-mcpauth-email") == h.user.email, seen
    scopes = seen.get("x-mcpauth-scopes", "").split()
    assert "mcp:tools" in scopes and ADMIN_SCOPE not in scopes, seen
    assert seen.get("x-mcpauth-assertion", "").count(".") == 2, seen
    # streaming: progress arrived while the tool ran (it takes 3 s), not all at the end
    assert not countdown.is_error and text_items(countdown) == ["counted down from 3"], countdown
    assert [value for _, value in progress] == [1, 2, 3], progress
    assert finished - progress[0][0] >= 2.0, f"first progress {finished - progress[0][0]:.2f}s before the answer"


def test_python_client_steps_up_for_a_tool_scope(gateway_harness: Harness) -> None:
    h = gateway_harness
    url = f"{h.server.issuer}{PATH}"

    async def main() -> types.CallToolResult:
        with anyio.fail_after(TIMEOUT):
            async with (
                h.http() as http_client,
                streamable_http_client(url, http_client=http_client) as (read, write),
                ClientSession(read, write) as session,
            ):
                await session.initialize()
                return await session.call_tool("admin_op", {})

    result = anyio.run(main)
    assert not result.is_error and text_items(result) == ["admin op done"], result
    forbidden = [e for e in h.recorder.exchanges if e.path == PATH and e.status == 403]
    assert forbidden and f'scope="mcp:tools {ADMIN_SCOPE}"' in forbidden[0].response_headers["www-authenticate"]
    assert len(h.browser.steps) == 2, [s.authorization_url for s in h.browser.steps]
