// Interop: the TS SDK v1 client in its Client ID Metadata Document mode (SEP-991: the provider's
// `clientMetadataUrl`) completes OAuth against a live `mcpauth serve` without registering: its
// client_id is the https URL of its metadata document, which mcpauth fetches.
//
// And mcp-remote (the stdio bridge, pinned in package.json) with `--client-metadata-url`: it
// prints the authorization URL, the test signs in and approves through the real forms and
// delivers the callback to mcp-remote's own loopback listener, then speaks JSON-RPC over its
// stdin/stdout (initialize, tools/call echo). `MCP_REMOTE_CONFIG_DIR` is a throw-away store.
//
// The document is served over HTTPS from 127.0.0.1 with a certificate from a throw-away CA that
// this test makes with `openssl`; the server trusts it through `[cimd] extra_ca_file` and may
// fetch from loopback through `[cimd] allow_loopback` (a setting for tests only).
//
//   npm ci && node --test cimd.test.mjs    # from this folder, after `cargo build -p mcpauth-server`
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import dns from "node:dns";
import fs from "node:fs";
import https from "node:https";
import os from "node:os";
import path from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { HeadlessProvider } from "./lib/headless-provider.mjs";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";
import { startServer, signUp, freePort } from "./lib/server.mjs";
import { authorizeHeadlessly } from "./lib/headless-ua.mjs";
import { createRecorder } from "./lib/recorder.mjs";

dns.setDefaultResultOrder("ipv4first");

const REDIRECT_URI = "http://127.0.0.1:53683/callback";
const USER = { email: "ts-sdk-cimd@example.com", password: "correct horse battery staple", name: "TS SDK CIMD" };

/** A CA and a certificate for localhost / 127.0.0.1 signed by it, made with openssl in `dir`. */
function makeCertificates(dir) {
  const run = (...args) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  run("req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=mcpauth interop CA",
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign");
  run("req", ...ec, "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=localhost");
  fs.writeFileSync(path.join(dir, "leaf.ext"),
    "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n");
  run("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "leaf.pem",
    "-days", "1", "-extfile", "leaf.ext");
  const read = (f) => fs.readFileSync(path.join(dir, f));
  return { caFile: path.join(dir, "ca.pem"), key: read("leaf.key"), cert: read("leaf.pem") };
}

let tmp;
let docs; // the HTTPS document server
let documentUrl;
const fetches = []; // what the document server was asked for
let server;
let user;
const recorder = createRecorder();

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "mcpauth-cimd-"));
  const { caFile, key, cert } = makeCertificates(tmp);
  docs = https.createServer({ key, cert }, (req, res) => {
    fetches.push({ path: req.url, accept: req.headers.accept });
    if (req.url !== "/oauth/client.json") return res.writeHead(404).end();
    res.writeHead(200, { "content-type": "application/json" }).end(
      JSON.stringify({
        client_id: documentUrl,
        client_name: "mcpauth interop (TS SDK CIMD)",
        // mcp-remote listens on http://localhost:<its port>/oauth/callback: a port-less loopback
        // redirect matches any port (RFC 8252 §7.3), as some published documents rely on.
        redirect_uris: [REDIRECT_URI, "http://localhost/oauth/callback"],
        grant_types: ["authorization_code", "refresh_token"],
        response_types: ["code"],
        token_endpoint_auth_method: "none",
      }),
    );
  });
  await new Promise((resolve) => docs.listen(0, "127.0.0.1", resolve));
  documentUrl = `https://localhost:${docs.address().port}/oauth/client.json`;
  server = await startServer({
    name: "interop-cimd",
    env: { MCPAUTH_CIMD__ALLOW_LOOPBACK: "true", MCPAUTH_CIMD__EXTRA_CA_FILE: caFile },
  });
  user = await signUp(server.issuer, USER);
});

after(async () => {
  await server?.stop();
  docs?.close();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

/** The SDK's OAuthClientProvider with a metadata document URL; the browser step is headless. */
class CimdProvider extends HeadlessProvider {
  constructor() {
    super({ redirectUri: REDIRECT_URI, user: USER, clientName: "unused: no registration" });
  }
  get clientMetadataUrl() {
    return documentUrl;
  }
}

test("TS SDK v1 with clientMetadataUrl: no registration, the document URL is the client_id", async () => {
  const provider = new CimdProvider();
  const client = new Client({ name: "mcpauth-interop-cimd", version: "1.0.0" });
  const transport = () =>
    new StreamableHTTPClientTransport(new URL(server.mcpUrl), { authProvider: provider, fetch: recorder.fetch });
  let t = transport();
  try {
    await assert.rejects(client.connect(t), (e) => e instanceof UnauthorizedError);
    assert.equal(provider.callbacks.length, 1, "the browser went to /authorize once");
    await t.finishAuth(provider.callbacks[0].code);
    t = transport();
    await client.connect(t);

    assert.equal(provider.clientInformation().client_id, documentUrl);
    const paths = recorder.entries.map((e) => new URL(e.url).pathname);
    assert.ok(!paths.includes("/api/auth/mcp/register"), `no registration: ${paths.join(" ")}`);
    assert.ok(fetches.length >= 1 && fetches.every((f) => f.path === "/oauth/client.json"), JSON.stringify(fetches));
    assert.equal(fetches[0].accept, "application/json");

    const r = await client.callTool({ name: "echo", arguments: { message: "hi" } });
    assert.ok(!r.isError, JSON.stringify(r));
    assert.ok(r.content[1].text.includes(documentUrl), `the caller is the document client: ${r.content[1].text}`);
    assert.ok(r.content[1].text.includes(user.id));
  } catch (e) {
    console.error("---- mcpauth output (last 40 lines) ----\n" + server?.log().split("\n").slice(-40).join("\n"));
    throw e;
  } finally {
    await client.close().catch(() => {});
  }
});

/** Waits until `read()` matches `pattern`, or fails after `ms` with what was read. */
async function waitFor(read, pattern, what, ms = 30_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const m = read().match(pattern);
    if (m) return m;
    if (Date.now() > deadline) throw new Error(`no ${what} within ${ms} ms; output:\n${read()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test("mcp-remote with --client-metadata-url: sign-in through its own callback, then tools over stdio", async () => {
  const port = await freePort();
  const configDir = fs.mkdtempSync(path.join(tmp, "mcp-remote-"));
  const bin = path.join(import.meta.dirname, "node_modules", "mcp-remote", "dist", "proxy.js");
  const env = { ...process.env, MCP_REMOTE_CONFIG_DIR: configDir };
  delete env.DISPLAY; // never open a real browser
  delete env.WAYLAND_DISPLAY;
  const child = spawn(process.execPath, [bin, server.mcpUrl, String(port), "--client-metadata-url", documentUrl], {
    env,
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stderr = "";
  let stdout = "";
  child.stderr.setEncoding("utf8").on("data", (d) => (stderr += d));
  child.stdout.setEncoding("utf8").on("data", (d) => (stdout += d));
  try {
    const [, authorizationUrl] = await waitFor(
      () => stderr,
      /Please authorize this client by visiting:\s*(\S+)/,
      "authorization URL",
    );
    assert.equal(new URL(authorizationUrl).searchParams.get("client_id"), documentUrl);
    const redirectUri = `http://localhost:${port}/oauth/callback`;
    const cb = await authorizeHeadlessly(authorizationUrl, {
      redirectUri,
      email: USER.email,
      password: USER.password,
    });
    assert.ok(cb.code, "a code came back");
    const delivered = await fetch(cb.callbackUrl);
    assert.equal(delivered.status, 200, "mcp-remote's callback listener took the code");
    await waitFor(() => stderr, /Proxy established successfully/, "proxy start");

    const send = (message) => child.stdin.write(JSON.stringify(message) + "\n");
    const answer = async (id) => {
      const [line] = await waitFor(() => stdout, new RegExp(`^.*"id":${id}[,}].*$`, "m"), `answer ${id}`);
      return JSON.parse(line);
    };
    send({
      jsonrpc: "2.0",
      id: 1,
      method: "initialize",
      params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "mcpauth-interop", version: "1" } },
    });
    assert.ok((await answer(1)).result?.serverInfo, stdout);
    send({ jsonrpc: "2.0", method: "notifications/initialized" });
    send({ jsonrpc: "2.0", id: 2, method: "tools/call", params: { name: "echo", arguments: { message: "via mcp-remote" } } });
    const echo = await answer(2);
    const caller = echo.result?.content?.[1]?.text ?? "";
    // The token's client is the document URL: mcp-remote never registered.
    assert.ok(caller.includes(documentUrl), `the caller is the document client: ${JSON.stringify(echo)}`);

  } catch (e) {
    console.error("---- mcp-remote stderr ----\n" + stderr.split("\n").slice(-40).join("\n"));
    console.error("---- mcpauth output (last 40 lines) ----\n" + server?.log().split("\n").slice(-40).join("\n"));
    throw e;
  } finally {
    child.kill("SIGTERM");
  }
});
