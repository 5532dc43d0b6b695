// Connected accounts end to end, with real parts only (SECURITY V2, V3, V4):
//
//   - the third-party service: panva's oidc-provider issuing short-lived access tokens with
//     refresh tokens, and a protected API that checks them with the provider's introspection
//     (lib/provider.mjs);
//   - mcpauth (`serve`) with a `[[connections]]` entry for that provider and two
//     `[[upstreams]]`: "tasks" with `credential = { connection = "tasks" }`, and "other", with none;
//   - both upstreams are MCP servers on the official Python SDK (upstream.py, in the venv of
//     interop/python's hash-pinned lock); the tasks tool `whoami` calls the API with the
//     Authorization header it received and returns the API's answer;
//   - the official TS SDK client (v1), signing in to mcpauth headlessly, declaring
//     `capabilities.elicitation.url`;
//   - Debian Chromium (playwright-core) as the user's browser opening the elicitation's URL,
//     signing in to mcpauth and connecting at oidc-provider.
//
// The story: the first call is answered -32042 with a URL elicitation; the browser connects;
// `notifications/elicitation/complete` arrives on the client's GET stream; the retried call acts
// as the user at the API. A client that did not declare URL elicitation gets a tool error with
// the link, and that link opened by another signed-in user connects nothing. The access token
// nears expiry: one call refreshes it silently; ten parallel calls make exactly one refresh at
// the provider. The provider withdraws the grant: the refresh is refused, the next call is
// -32042 again, and connecting again makes it work. Through all of it, no token the provider
// issued appears in what the client received, in the other upstream's view of the request,
// in mcpauth's output, in /metrics, or in the database (file bytes and `sqlite3 .dump`).
//
//   interop/connections/run.sh        # after `cargo build -p mcpauth-server`
//
// Environment: MCPAUTH_BIN, CHROMIUM_BIN (default /usr/bin/chromium), PY_INTEROP_VENV (default
// <target>/interop-python-venv), INTEROP_VERBOSE=1, SCREENSHOT_DIR (screenshots of the pages).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import crypto from "node:crypto";
import dns from "node:dns";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";
import {
  ElicitationCompleteNotificationSchema,
  ErrorCode,
  UrlElicitationRequiredError,
} from "@modelcontextprotocol/sdk/types.js";
import { startServer, signUp, freePort, REPO_ROOT } from "../ts/lib/server.mjs";
import { HeadlessProvider } from "../ts/lib/headless-provider.mjs";
import { startService } from "./lib/provider.mjs";

dns.setDefaultResultOrder("ipv4first");

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CHROMIUM = process.env.CHROMIUM_BIN || "/usr/bin/chromium";
const CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"];
const TARGET = process.env.CARGO_TARGET_DIR ? path.resolve(REPO_ROOT, process.env.CARGO_TARGET_DIR) : path.join(REPO_ROOT, "target");
const VENV = process.env.PY_INTEROP_VENV || path.join(TARGET, "interop-python-venv");
const SCREENSHOTS = process.env.SCREENSHOT_DIR;
const CONNECTION = "tasks";
const CONNECTION_NAME = "Tasks";
// mcpauth refreshes a token that expires within 60 s: a 63 s token needs refreshing 3 s later.
const REFRESH_MARGIN = 60;
const SHORT_TTL = REFRESH_MARGIN + 3;
const ADA = { email: "ada@example.com", password: "correct horse battery staple", name: "Ada" };
const BOB = { email: "bob@example.com", password: "another horse battery staple", name: "Bob" };
const log = (...a) => process.env.INTEROP_VERBOSE === "1" && console.log(...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let service; // oidc-provider + the protected API
let tasksUpstream;
let otherUpstream;
let server; // mcpauth
let metricsUrl;
let browser;
const received = []; // what the MCP clients received: one array of text chunks per answer

/** upstream.py on a free port, in the interop venv; resolves once it answers HTTP. */
async function startPythonUpstream(apiUrl, label) {
  const python = path.join(VENV, "bin", "python");
  if (!fs.existsSync(python)) throw new Error(`no Python venv at ${VENV}: run interop/connections/run.sh (it builds it)`);
  const port = await freePort();
  const child = spawn(python, [path.join(HERE, "upstream.py"), String(port), apiUrl], { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  const url = `http://127.0.0.1:${port}/mcp`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${label} upstream exited:\n${output}`);
    try {
      await fetch(url, { method: "GET" });
      break;
    } catch {
      if (Date.now() > deadline) throw new Error(`${label} upstream did not listen within 30 s:\n${output}`);
      await sleep(100);
    }
  }
  return { url, output: () => output, stop: () => child.kill("SIGTERM") };
}

/** A fetch that records every answer's body as the client reads it (SSE streams included). */
async function recordingFetch(url, init) {
  const res = await fetch(url, init);
  if (!res.body) return res;
  const chunks = [];
  received.push(chunks);
  const decoder = new TextDecoder();
  const body = res.body.pipeThrough(
    new TransformStream({
      transform(chunk, controller) {
        chunks.push(decoder.decode(chunk, { stream: true }));
        controller.enqueue(chunk);
      },
    }),
  );
  return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
}

/** The TS SDK client, signed in to mcpauth as `user`, connected to the upstream at `path`. */
async function mcpClient(upstreamPath, user, { urlElicitation }) {
  const redirectUri = `http://127.0.0.1:${await freePort()}/callback`;
  const provider = new HeadlessProvider({ redirectUri, user, clientName: `connections interop (${user.name})`, log });
  const capabilities = urlElicitation ? { elicitation: { url: {} } } : {};
  const client = new Client({ name: "mcpauth-interop-connections", version: "1.0.0" }, { capabilities });
  const completions = [];
  client.setNotificationHandler(ElicitationCompleteNotificationSchema, (n) => completions.push(n.params.elicitationId));
  const url = new URL(`${server.issuer}${upstreamPath}`);
  const newTransport = () => new StreamableHTTPClientTransport(url, { authProvider: provider, fetch: recordingFetch });
  let transport = newTransport();
  await assert.rejects(client.connect(transport), (e) => e instanceof UnauthorizedError);
  await transport.finishAuth(provider.lastCallback.code);
  transport = newTransport();
  await client.connect(transport);
  return { client, transport, completions, provider };
}

const whoami = (client) => client.callTool({ name: "whoami", arguments: {} });

/** The -32042 error of a call that needs a connection. */
async function elicitationOf(client) {
  let error;
  await assert.rejects(whoami(client), (e) => {
    error = e;
    return true;
  });
  assert.ok(error instanceof UrlElicitationRequiredError, `a URLElicitationRequiredError, got: ${error}`);
  assert.equal(error.code, ErrorCode.UrlElicitationRequired);
  assert.equal(error.code, -32042);
  assert.equal(error.elicitations.length, 1);
  const [elicitation] = error.elicitations;
  assert.equal(elicitation.mode, "url");
  assert.ok(elicitation.elicitationId, "an elicitation id");
  assert.ok(elicitation.url.startsWith(`${server.issuer}/api/auth/connections/${CONNECTION}/connect?`), elicitation.url);
  assert.ok(elicitation.message.includes(CONNECTION_NAME), elicitation.message);
  return elicitation;
}

async function screenshot(page, name) {
  if (!SCREENSHOTS) return;
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

/** A browser signed in to mcpauth as `user`. */
async function signedInBrowser(user) {
  const context = await browser.newContext({ viewport: { width: 1000, height: 800 } });
  context.setDefaultTimeout(20_000);
  const page = await context.newPage();
  await page.goto(`${server.issuer}/sign-in`);
  await page.locator('input[name="email"]').fill(user.email);
  await page.locator('input[name="password"]').fill(user.password);
  await Promise.all([page.waitForURL((u) => u.pathname !== "/sign-in"), page.getByRole("button", { name: "Sign in" }).click()]);
  return { context, page };
}

/** At oidc-provider: its development login (any password), then its consent screen. */
async function signInAtProvider(page, login) {
  await page.waitForURL((url) => url.origin === service.issuer || url.origin === server.issuer);
  if (new URL(page.url()).origin !== service.issuer) return;
  const loginField = page.locator('input[name="login"]');
  if (await loginField.count()) {
    await loginField.fill(login);
    await page.locator('input[name="password"]').fill("any password will do");
    await page.getByRole("button", { name: "Sign-in" }).click();
    await page.waitForURL((url) => url.origin === service.issuer || url.origin === server.issuer);
  }
  if (new URL(page.url()).origin === service.issuer) await page.getByRole("button", { name: "Continue" }).click();
  await page.waitForURL((url) => url.origin === server.issuer);
}

/** The user opens the elicitation's URL in their browser and connects the service there. */
async function connectInBrowser(url, user, { login = "ada", shot } = {}) {
  const { context, page } = await signedInBrowser(user);
  try {
    await page.goto(url);
    if (shot) await screenshot(page, `${shot}-connect-page`);
    await page.getByRole("button", { name: `Connect ${CONNECTION_NAME}` }).click();
    await signInAtProvider(page, login);
    await page.getByText("return to your client").waitFor();
    if (shot) await screenshot(page, `${shot}-connected`);
  } catch (e) {
    const text = await page.locator("body").innerText({ timeout: 2_000 }).catch(() => "(unreadable)");
    throw new Error(`${e.message}\nbrowser at ${page.url()}: ${text.replace(/\s+/g, " ").slice(0, 500)}`);
  } finally {
    await context.close();
  }
}

async function waitFor(predicate, what, ms = 5_000) {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

before(async () => {
  const port = await freePort();
  const issuer = `http://localhost:${port}`;
  service = await startService({ redirectUri: `${issuer}/api/auth/connections/${CONNECTION}/callback`, accessTtl: SHORT_TTL });
  log(`# oidc-provider at ${service.issuer}, API at ${service.apiUrl}`);
  tasksUpstream = await startPythonUpstream(service.apiUrl, "tasks");
  log(`# tasks upstream at ${tasksUpstream.url}`);
  otherUpstream = await startPythonUpstream(service.apiUrl, "other");
  const metricsPort = await freePort();
  metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
  const config = path.join(fs.mkdtempSync(path.join(process.env.TMPDIR || "/tmp", "mcpauth-connections-")), "mcpauth.toml");
  fs.writeFileSync(
    config,
    `metrics_bind = "127.0.0.1:${metricsPort}"

[[connections]]
id = "${CONNECTION}"
name = "${CONNECTION_NAME}"
type = "oidc"
issuer = "${service.issuer}"
client_id = "${service.connectionClient.id}"
client_secret = "${service.connectionClient.secret}"
scopes = ["openid", "offline_access"]

[[upstreams]]
path = "/mcp/tasks"
url = "${tasksUpstream.url}"
name = "Tasks tools"
credential = { connection = "${CONNECTION}", header = "Authorization", format = "Bearer {token}" }

[[upstreams]]
path = "/mcp/other"
url = "${otherUpstream.url}"
name = "Other tools"
`,
  );
  server = await startServer({
    name: "interop-connections",
    bind: `127.0.0.1:${port}`,
    args: ["--config", config, "--issuer", issuer],
    // Everything mcpauth logs, at debug: the token must not be in any of it.
    env: { MCPAUTH_VAULT_KEY: crypto.randomBytes(32).toString("base64"), RUST_LOG: "debug" },
  });
  log(`# mcpauth at ${server.issuer}`);
  await signUp(server.issuer, ADA);
  await signUp(server.issuer, BOB);
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  log("# Chromium started");
});

after(async () => {
  await browser?.close();
  await server?.stop();
  tasksUpstream?.stop();
  otherUpstream?.stop();
  await service?.close();
});

let ada; // Ada's client, declaring URL elicitation, kept across the tests (they run in order)

test("not connected: -32042 URL elicitation; the browser connects; the retried call acts as the user", async () => {
  ada = await mcpClient("/mcp/tasks", ADA, { urlElicitation: true });
  // tools/list needs no connection.
  const { tools } = await ada.client.listTools();
  assert.deepEqual(tools.map((t) => t.name).sort(), ["headers", "whoami"]);
  const elicitation = await elicitationOf(ada.client);
  assert.equal(service.grants.authorization_code, 0, "nothing connected yet");

  await connectInBrowser(elicitation.url, ADA, { shot: "connections" });
  assert.equal(service.grants.authorization_code, 1, "the browser connected at the provider");
  // Best effort by the gateway, but here the client has its GET stream open: it is told.
  await waitFor(() => ada.completions.includes(elicitation.elicitationId), "notifications/elicitation/complete");

  const answer = await whoami(ada.client);
  assert.ok(!answer.isError, JSON.stringify(answer));
  const who = JSON.parse(answer.content[0].text);
  assert.equal(who.sub, "ada", "the API saw Ada's token at the service");
  assert.equal(who.client_id, service.connectionClient.id);
  assert.equal(service.grants.refresh_token, 0, "a fresh token needs no refresh");
});

test("a client without URL elicitation gets a tool error with the link; another user's browser connects nothing (V2)", async () => {
  const bob = await mcpClient("/mcp/tasks", BOB, { urlElicitation: false });
  try {
    const answer = await whoami(bob.client);
    assert.equal(answer.isError, true, JSON.stringify(answer));
    const text = answer.content[0].text;
    const link = text.match(/(http:\/\/\S+\/connections\/tasks\/connect\?\S+)/)?.[1];
    assert.ok(link, `the text carries the link: ${text}`);
    const codesBefore = service.grants.authorization_code;
    // Ada, signed in, opens Bob's link: nothing is connected to anyone.
    const { context, page } = await signedInBrowser(ADA);
    try {
      await page.goto(link);
      await screenshot(page, "connections-other-user");
      assert.equal(await page.getByRole("button", { name: `Connect ${CONNECTION_NAME}` }).count(), 0, "no connect button for another user's link");
    } finally {
      await context.close();
    }
    assert.equal(service.grants.authorization_code, codesBefore);
    const again = await whoami(bob.client);
    assert.equal(again.isError, true, "Bob is still not connected");
  } finally {
    await bob.client.close();
  }
});

test("expiry: one call refreshes silently; ten parallel calls make exactly one refresh (V4)", async () => {
  await sleep((SHORT_TTL - REFRESH_MARGIN + 1) * 1000);
  const before = service.grants.refresh_token;
  const answer = await whoami(ada.client);
  assert.ok(!answer.isError, JSON.stringify(answer));
  assert.equal(JSON.parse(answer.content[0].text).sub, "ada");
  assert.equal(service.grants.refresh_token, before + 1, "refreshed once, silently");

  await sleep((SHORT_TTL - REFRESH_MARGIN + 1) * 1000);
  const seen = service.seenByApi.length;
  const answers = await Promise.all(Array.from({ length: 10 }, () => whoami(ada.client)));
  for (const a of answers) assert.equal(JSON.parse(a.content[0].text).sub, "ada", JSON.stringify(a));
  assert.equal(service.grants.refresh_token, before + 2, "ten parallel calls, one refresh");
  const tokens = new Set(service.seenByApi.slice(seen));
  assert.equal(tokens.size, 1, "all ten used the one new token");
});

test("the provider refuses the refresh: reconnect needed, -32042 again, connecting again works (V4)", async () => {
  await service.revokeGrants();
  await sleep((SHORT_TTL - REFRESH_MARGIN + 1) * 1000);
  const elicitation = await elicitationOf(ada.client);
  assert.ok(service.grants.refused >= 1, "the provider refused a refresh");
  await connectInBrowser(elicitation.url, ADA);
  const answer = await whoami(ada.client);
  assert.equal(JSON.parse(answer.content[0].text).sub, "ada");
});

test("no token of the service in the client's answers, the other upstream, logs, /metrics or the database (V3, V1)", async () => {
  const issued = service.issued;
  assert.ok(issued.length >= 6, `access and refresh tokens were issued (${issued.length})`);
  const leaks = (where, text) => {
    const found = issued.filter((t) => text.includes(t));
    assert.deepEqual(found.map((t) => `${t.slice(0, 6)}…`), [], `no token of the service in ${where}`);
  };

  // What the clients read so far (the headers tool below echoes the token back by design).
  const bodies = received.map((chunks) => chunks.join(""));
  assert.ok(bodies.some((b) => b.includes('\\"sub\\":\\"ada\\"')), "the record holds the answers the clients read");
  leaks("what the MCP clients received", bodies.join("\n"));

  // The tasks upstream gets the token in the configured header and nowhere else.
  const seen = JSON.parse((await ada.client.callTool({ name: "headers", arguments: {} })).content[0].text);
  const current = service.seenByApi.at(-1);
  assert.equal(seen.authorization, `Bearer ${current}`);
  const { authorization, ...rest } = seen;
  leaks("the tasks upstream's other headers", JSON.stringify(rest));
  assert.ok(!JSON.stringify(seen).includes(ada.provider.tokens().access_token), "never the client's mcpauth token");

  // The other upstream (no credential) never sees it.
  const other = await mcpClient("/mcp/other", ADA, { urlElicitation: true });
  try {
    const otherSeen = (await other.client.callTool({ name: "headers", arguments: {} })).content[0].text;
    leaks("the other upstream's view of the request", otherSeen);
    assert.equal(JSON.parse(otherSeen).authorization, undefined);
  } finally {
    await other.client.close();
  }
  await ada.client.close();

  leaks("mcpauth's output", server.log());
  leaks("/metrics", await (await fetch(metricsUrl)).text());
  const db = path.join(server.tmp, "mcpauth.db");
  for (const file of [db, `${db}-wal`, `${db}-shm`]) {
    if (fs.existsSync(file)) leaks(path.basename(file), fs.readFileSync(file).toString("latin1"));
  }
  leaks("sqlite3 .dump", execFileSync("sqlite3", [db, ".dump"], { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 }));
  leaks("the tasks upstream's output", tasksUpstream.output());
});
