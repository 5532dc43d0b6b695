// The gateway with a real TS upstream: `mcpauth serve --upstream <url>` in front of a stateful MCP
// server on the official TS SDK v1 (lib/upstream-server.mjs), reached at /api/mcp by the TS SDK v1
// client, which does the whole OAuth flow against mcpauth. Checks: the session the upstream made
// reaches the client (Mcp-Session-Id through the gateway both ways, DELETE ends it upstream), the
// upstream never sees the client's Authorization header and sees mcpauth's X-MCPAuth-* identity
// instead (SECURITY M4). Then the same through mcp-remote (the stdio bridge Claude Desktop runs),
// signing in with its own loopback callback.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import dns from "node:dns";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";
import { startServer, signUp } from "./lib/server.mjs";
import { HeadlessProvider } from "./lib/headless-provider.mjs";
import { authorizeHeadlessly } from "./lib/headless-ua.mjs";
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

/** `mcp-remote <url>` as a child speaking newline-delimited JSON-RPC on stdio. */
function startMcpRemote(url, configDir) {
  const child = spawn(
    process.execPath,
    [path.join("node_modules", "mcp-remote", "dist", "proxy.js"), url],
    {
      // BROWSER=true: no real browser opens; the test follows the printed URL itself.
      env: { ...process.env, MCP_REMOTE_CONFIG_DIR: configDir, BROWSER: "true", DISPLAY: "" },
      stdio: ["pipe", "pipe", "pipe"],
    },
  );
  let stderr = "";
  const waiters = [];
  child.stderr.on("data", (chunk) => {
    stderr += chunk;
    for (const w of waiters.splice(0)) w();
  });
  const answers = new Map();
  readline.createInterface({ input: child.stdout }).on("line", (line) => {
    try {
      const message = JSON.parse(line);
      if (message.id !== undefined) answers.get(message.id)?.(message);
    } catch {
      /* not a JSON-RPC line */
    }
  });
  return {
    child,
    stderr: () => stderr,
    /** Resolves with the first match of `pattern` in stderr. */
    async waitFor(pattern, ms = 30_000) {
      const deadline = Date.now() + ms;
      for (;;) {
        const m = stderr.match(pattern);
        if (m) return m;
        if (Date.now() > deadline) throw new Error(`mcp-remote never printed ${pattern}:\n${stderr}`);
        await new Promise((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 200);
        });
      }
    },
    request(id, method, params = {}) {
      const answer = new Promise((resolve) => answers.set(id, resolve));
      child.stdin.write(JSON.stringify({ jsonrpc: "2.0", id, method, params }) + "\n");
      return answer;
    },
    notify(method) {
      child.stdin.write(JSON.stringify({ jsonrpc: "2.0", method }) + "\n");
    },
  };
}

test("mcp-remote (stdio bridge) through the gateway", async () => {
  const configDir = fs.mkdtempSync(path.join(os.tmpdir(), "mcpauth-mcp-remote-"));
  const remote = startMcpRemote(server.mcpUrl, configDir);
  try {
    const initialized = remote.request(1, "initialize", {
      protocolVersion: "2025-06-18",
      capabilities: {},
      clientInfo: { name: "mcpauth-interop-mcp-remote", version: "1.0.0" },
    });
    const [, authorizationUrl] = await remote.waitFor(/authorize this client by visiting:\s*\n(\S+)/);
    const redirectUri = new URL(authorizationUrl).searchParams.get("redirect_uri");
    assert.match(redirectUri, /^http:\/\/(localhost|127\.0\.0\.1):\d+\//, "a loopback callback of its own");
    assert.equal(new URL(authorizationUrl).searchParams.get("resource"), server.mcpUrl);
    const cb = await authorizeHeadlessly(authorizationUrl, { redirectUri, email: USER.email, password: USER.password, log });
    const delivered = await fetch(cb.callbackUrl); // what the browser would do: land on its callback
    assert.ok(delivered.ok, `mcp-remote's callback answered ${delivered.status}`);

    const init = await initialized;
    assert.equal(init.result?.serverInfo?.name, "ts-upstream", JSON.stringify(init));
    remote.notify("notifications/initialized");
    const listed = await remote.request(2, "tools/list");
    assert.deepEqual(listed.result.tools.map((x) => x.name).sort(), ["headers", "session"]);
    const called = await remote.request(3, "tools/call", { name: "headers", arguments: {} });
    const headers = JSON.parse(called.result.content[0].text);
    assert.equal(headers.authorization, undefined, `no Authorization upstream: ${JSON.stringify(headers)}`);
    assert.equal(headers["x-mcpauth-user-id"], user.id);
  } catch (e) {
    console.error("---- mcp-remote stderr ----\n" + remote.stderr());
    console.error("---- mcpauth output ----\n" + server?.log().split("\n").slice(-40).join("\n"));
    throw e;
  } finally {
    remote.child.kill("SIGTERM");
    fs.rmSync(configDir, { recursive: true, force: true });
  }
});
