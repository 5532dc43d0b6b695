"""An MCP server on the official Python SDK whose tool acts as the user at a protected API: the
upstream that connections.test.mjs puts mcpauth's gateway in front of, with the user's connected
token injected into the `Authorization` header of its tool calls.

    python upstream.py PORT API_URL

Tools: `whoami` calls `GET {API_URL}/whoami` with the `Authorization` header this server received
and returns the API's answer (who the token belongs to, per the provider's introspection);
`headers` returns every HTTP header this server received, as JSON (what the upstream sees of the
client's request).
"""

from __future__ import annotations

import json
import sys

import httpx2
from mcp.server.mcpserver import Context, MCPServer

app = MCPServer("python-connected-upstream")
API_URL = sys.argv[2] if len(sys.argv) > 2 else ""


@app.tool()
async def whoami(ctx: Context) -> str:
    """Who the protected API says the caller is."""
    headers = dict(ctx.headers or {})
    authorization = headers.get("authorization")
    if not authorization:
        raise ValueError("no Authorization header reached this server")
    async with httpx2.AsyncClient() as client:
        answer = await client.get(f"{API_URL}/whoami", headers={"authorization": authorization})
    if answer.status_code != 200:
        raise ValueError(f"the API refused the token: {answer.status_code}")
    return answer.text


@app.tool()
def headers(ctx: Context) -> str:
    """The request headers this server received."""
    return json.dumps(dict(ctx.headers or {}))


if __name__ == "__main__":
    app.run("streamable-http", host="127.0.0.1", port=int(sys.argv[1]))
