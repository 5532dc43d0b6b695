"""An MCP server written the ordinary way on the official Python SDK (MCPServer, streamable-http,
stateful sessions and SSE answers by default), knowing nothing of mcpauth: the upstream that
test_gateway.py puts mcpauth in front of.

    python upstream_server.py PORT [--stateless]

`--stateless` (the benchmark's mode): no sessions, JSON answers. Tools: `echo` (the message back),
`headers` (the HTTP headers this server received, as JSON), `countdown` (reports progress
once a second for `steps` seconds, then answers), `admin_op` (which mcpauth's configuration, not
this server, reserves to a scope).
"""

from __future__ import annotations

import json
import sys

import anyio
from mcp.server.mcpserver import Context, MCPServer

app = MCPServer("python-upstream")


@app.tool()
def echo(message: str) -> str:
    """The message back."""
    return f"Tool echo: {message}"


@app.tool()
def headers(ctx: Context) -> str:
    """The request headers this server received."""
    return json.dumps(dict(ctx.headers or {}))


@app.tool()
async def countdown(steps: int, ctx: Context) -> str:
    """Reports progress once a second, `steps` times, then answers."""
    for step in range(1, steps + 1):
        await ctx.report_progress(step, steps, f"step {step} of {steps}")
        await anyio.sleep(1)
    return f"counted down from {steps}"


@app.tool()
def admin_op() -> str:
    """Something only admins may do."""
    return "admin op done"


if __name__ == "__main__":
    stateless = "--stateless" in sys.argv[2:]
    app.run(
        "streamable-http",
        host="127.0.0.1",
        port=int(sys.argv[1]),
        stateless_http=stateless,
        json_response=stateless,
    )
