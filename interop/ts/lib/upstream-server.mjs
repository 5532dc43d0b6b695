// An MCP server written the ordinary way on the official TS SDK v1 (McpServer +
// StreamableHTTPServerTransport, stateful: one session per `initialize`, kept by Mcp-Session-Id),
// knowing nothing of mcpauth: the upstream that gateway.test.mjs puts mcpauth in front of.
//
//   const upstream = await startTsUpstream();   // 127.0.0.1, a free port
//   upstream.url, upstream.sessions (live session ids), await upstream.close()
//
// Tools: `headers` (the HTTP headers of the request, as JSON) and `session` (the session id).
import http from "node:http";
import { randomUUID } from "node:crypto";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { isInitializeRequest } from "@modelcontextprotocol/sdk/types.js";

function mcpServer() {
  const server = new McpServer({ name: "ts-upstream", version: "1.0.0" });
  const text = (value) => ({ content: [{ type: "text", text: value }] });
  server.registerTool("headers", { description: "The request headers this server received" }, async (extra) =>
    text(JSON.stringify(extra.requestInfo?.headers ?? {})),
  );
  server.registerTool("session", { description: "This session's id" }, async (extra) => text(extra.sessionId ?? ""));
  return server;
}

async function readJson(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const raw = Buffer.concat(chunks).toString("utf8");
  return raw ? JSON.parse(raw) : undefined;
}

export async function startTsUpstream() {
  const transports = new Map(); // session id -> transport
  const httpServer = http.createServer(async (req, res) => {
    try {
      if (new URL(req.url, "http://upstream").pathname !== "/mcp") {
        res.writeHead(404).end();
        return;
      }
      const body = req.method === "POST" ? await readJson(req) : undefined;
      const sessionId = req.headers["mcp-session-id"];
      let transport = sessionId ? transports.get(sessionId) : undefined;
      if (!transport) {
        if (req.method !== "POST" || sessionId || !isInitializeRequest(body)) {
          res.writeHead(sessionId ? 404 : 400, { "content-type": "application/json" });
          res.end(JSON.stringify({ jsonrpc: "2.0", error: { code: -32000, message: "no valid session" }, id: null }));
          return;
        }
        transport = new StreamableHTTPServerTransport({
          sessionIdGenerator: () => randomUUID(),
          onsessioninitialized: (id) => transports.set(id, transport),
        });
        transport.onclose = () => transport.sessionId && transports.delete(transport.sessionId);
        await mcpServer().connect(transport);
      }
      await transport.handleRequest(req, res, body);
    } catch (e) {
      if (!res.headersSent) res.writeHead(500).end(String(e));
    }
  });
  await new Promise((resolve) => httpServer.listen(0, "127.0.0.1", resolve));
  const { port } = httpServer.address();
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    sessions: transports,
    close: () =>
      new Promise((resolve) => {
        httpServer.closeAllConnections();
        httpServer.close(resolve);
      }),
  };
}
