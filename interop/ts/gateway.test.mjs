// The gateway with a real TS upstream: `mcpauth serve --upstream <url>` in front of a stateful MCP
// server on the official TS SDK v1 (lib/upstream-server.mjs), reached at /api/mcp by the TS SDK v1
// client, which does the whole OAuth flow against mcpauth. Checks: the session the upstream made
// reaches the client (Mcp-Session-Id through the gateway both ways, DELETE ends it upstream), the
// upstream never sees the client's Authorization header and sees mcpauth's X-MCPAuth-* identity
// instead (SECURITY M4).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import dns from "node:dns";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";
import { startServer, signUp } from "./lib/server.mjs";
import { HeadlessProvider } from "./lib/headless-provider.mjs";
import { createRecorder } from "./lib/recorder.mjs";
import { startTsUpstream } from "./lib/upstream-server.mjs";

dns.setDefaultResultOrder("ipv4first");

const REDIRECT_URI = "http://127.0.0.1:53683/callback";
const USER = { email: "ts-gateway@example.com", password: "correct horse battery staple", name: "TS Gateway" };
const log = (...a) => process.env.INTEROP_VERBOSE === "1" && console.log(...a);

let upstream;
let server;
let user;
const recorder = createRecorder();

before(async () => {
  upstream = await startTsUpstream();
  server = await startServer({ name: "interop-ts-gateway", args: ["--upstream", upstream.url] });
  user = await signUp(server.issuer, USER);
});

after(async () => {
  await server?.stop();
  await upstream?.close();
});

test("TS SDK v1 client through the gateway to a stateful TS SDK server", async (t) => {
  const provider = new HeadlessProvider({ redirectUri: REDIRECT_URI, user: USER, clientName: "mcpauth interop (gateway)", log });
  const client = new Client({ name: "mcpauth-interop-gateway", version: "1.0.0" });
  const newTransport = () =>
    new StreamableHTTPClientTransport(new URL(server.mcpUrl), { authProvider: provider, fetch: recorder.fetch });
  let transport = newTransport();
  try {
    await assert.rejects(client.connect(transport), (e) => e instanceof UnauthorizedError);
    await transport.finishAuth(provider.lastCallback.code);
    transport = newTransport();
    await client.connect(transport);
    assert.equal(client.getServerVersion()?.name, "ts-upstream", "initialize was answered by the upstream");
    assert.equal(provider.authorizationUrls[0].searchParams.get("resource"), server.mcpUrl);

    const sessionId = transport.sessionId;
    assert.ok(sessionId, "the upstream's Mcp-Session-Id reached the client");
    assert.ok(upstream.sessions.has(sessionId), "it is the upstream's own session");

    const { tools } = await client.listTools();
    assert.deepEqual(tools.map((x) => x.name).sort(), ["headers", "session"]);

    const session = await client.callTool({ name: "session", arguments: {} });
    assert.equal(session.content[0].text, sessionId, "calls go to the same upstream session");

    const headers = JSON.parse((await client.callTool({ name: "headers", arguments: {} })).content[0].text);
    assert.equal(headers.authorization, undefined, `no Authorization upstream: ${JSON.stringify(headers)}`);
    assert.equal(headers["x-mcpauth-user-id"], user.id);
    assert.equal(headers["x-mcpauth-email"], USER.email);
    assert.equal(headers["x-mcpauth-client-id"], provider.clientInformation().client_id);
    assert.ok(headers["x-mcpauth-scopes"].split(" ").includes("mcp:tools"));
    assert.equal(headers["x-mcpauth-assertion"].split(".").length, 3, "a signed assertion (JWT)");
    assert.equal(headers["mcp-session-id"], sessionId);

    await transport.terminateSession(); // DELETE through the gateway
    assert.ok(!upstream.sessions.has(sessionId), "DELETE ended the upstream's session");
  } catch (e) {
    console.error("---- what the SDK sent and got ----\n" + recorder.summary());
    console.error("---- mcpauth output ----\n" + server?.log().split("\n").slice(-40).join("\n"));
    throw e;
  } finally {
    await client.close();
  }
  t.diagnostic(`upstream ${upstream.url} behind ${server.mcpUrl}`);
});
