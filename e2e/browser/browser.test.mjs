// End-to-end test of the built-in pages (sign-in, sign-up, consent) in a real browser.
//
// Starts `mcpauth serve` on a free port with a fresh SQLite file, drives Debian's Chromium
// (headless, through playwright-core) through the OAuth authorization-code flow of a public
// client (PKCE S256), and checks what arrives at the client's redirect URI.
//
//   npm ci && node --test                  # from this folder, after `cargo build -p mcpauth-server`
//
// Environment:
//   MCPAUTH_BIN       server binary (default: <repo>/target/debug/mcpauth, honouring CARGO_TARGET_DIR)
//   CHROMIUM_BIN      browser (default: /usr/bin/chromium)
//   SCREENSHOT_DIR    where the page screenshots go (default: a new temp dir); paths are printed
//   E2E_KEEP_TMP=1    keep the server's temp dir (database, logs)
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import crypto from "node:crypto";
import dns from "node:dns";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

// The server listens on 127.0.0.1 while the issuer says `localhost`: resolve it to IPv4 first.
dns.setDefaultResultOrder("ipv4first");

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = path.resolve(HERE, "..", "..");
const CHROMIUM = process.env.CHROMIUM_BIN || "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
  "--disable-quic",
];
const SCOPE = "openid profile email offline_access";
const PAGE_TIMEOUT_MS = 20_000;

function resolveBinary() {
  const fromEnv = process.env.MCPAUTH_BIN;
  const candidates = [];
  if (fromEnv) {
    if (path.isAbsolute(fromEnv)) candidates.push(fromEnv);
    else candidates.push(path.resolve(process.cwd(), fromEnv), path.resolve(REPO_ROOT, fromEnv));
  } else {
    const targetDir = process.env.CARGO_TARGET_DIR
      ? path.resolve(REPO_ROOT, process.env.CARGO_TARGET_DIR)
      : path.join(REPO_ROOT, "target");
    candidates.push(path.join(targetDir, "debug", "mcpauth"));
  }
  const found = candidates.find((c) => fs.existsSync(c));
  if (!found) {
    throw new Error(
      `mcpauth binary not found (tried ${candidates.join(", ")}); run \`cargo build -p mcpauth-server\` or set MCPAUTH_BIN`,
    );
  }
  return found;
}

// ---------------------------------------------------------------------------------------------
// The server under test
// ---------------------------------------------------------------------------------------------

const tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), "mcpauth-e2e-browser-"));
const screenshotDir = process.env.SCREENSHOT_DIR
  ? path.resolve(process.env.SCREENSHOT_DIR)
  : fs.mkdtempSync(path.join(os.tmpdir(), "mcpauth-screenshots-"));
fs.mkdirSync(screenshotDir, { recursive: true });

let server; // child process
let serverLog = ""; // stdout + stderr, shown when something fails
let issuer; // "http://localhost:PORT", exactly as printed
let mcpEndpoint; // resource indicator
let browser;
let callback; // { server, url, hits: [] }
const screenshots = [];

function killServer(signal = "SIGTERM") {
  if (server && server.exitCode === null && server.signalCode === null) {
    try {
      server.kill(signal);
    } catch {
      /* already gone */
    }
  }
}
// Never leave the server behind, whatever happens to this process.
process.on("exit", () => killServer("SIGKILL"));
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(sig, () => {
    killServer("SIGKILL");
    if (!process.env.E2E_KEEP_TMP) fs.rmSync(tmpDir, { recursive: true, force: true });
    process.exit(128 + (os.constants.signals[sig] ?? 1));
  });
}

async function startServer() {
  const bin = resolveBinary();
  const dbUrl = `sqlite://${path.join(tmpDir, "mcpauth.db")}`;
  const args = ["serve", "--bind", "127.0.0.1:0", "--database-url", dbUrl];
  console.log(`# starting ${bin} ${args.join(" ")}`);
  // The server reads every MCPAUTH_* variable as configuration and refuses unknown ones, so the
  // harness's own MCPAUTH_BIN must not reach it.
  const env = { ...process.env, MCPAUTH_RATE_LIMITS__ENABLED: "false", NO_COLOR: "1" };
  delete env.MCPAUTH_BIN;
  server = spawn(bin, args, {
    cwd: tmpDir,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  server.stdout.setEncoding("utf8");
  server.stderr.setEncoding("utf8");
  server.stderr.on("data", (d) => (serverLog += d));

  const banner = await new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`server printed no banner within 60 s:\n${serverLog}`)), 60_000);
    const onData = (d) => {
      out += d;
      serverLog += d;
      const iss = /^\s*Issuer:\s*(\S+)\s*$/m.exec(out);
      const listen = /^\s*Listening on:\s*(\S+)\s*$/m.exec(out);
      if (iss && listen) {
        clearTimeout(timer);
        server.stdout.off("data", onData);
        server.stdout.on("data", (more) => (serverLog += more));
        const mcp = /^\s*MCP endpoint:\s*(\S+)\s*$/m.exec(out);
        resolve({ issuer: iss[1], listen: listen[1], mcp: mcp?.[1] });
      }
    };
    server.stdout.on("data", onData);
    server.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    server.once("exit", (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`server exited early (code ${code}, signal ${sig}):\n${serverLog}`));
    });
  });
  issuer = banner.issuer.replace(/\/+$/, "");
  mcpEndpoint = banner.mcp || `${issuer}/api/mcp`;
  console.log(`# server ready: issuer ${issuer}, listening on ${banner.listen}`);

  const health = await fetch(`${issuer}/healthz`);
  assert.equal(health.status, 200, "GET /healthz");
  assert.equal((await health.text()).trim(), "ok", "GET /healthz body");
}

async function stopServer() {
  if (!server || server.exitCode !== null || server.signalCode !== null) return;
  const exited = new Promise((resolve) => server.once("exit", resolve));
  killServer("SIGTERM");
  const timeout = new Promise((resolve) => setTimeout(() => resolve("timeout"), 10_000));
  if ((await Promise.race([exited, timeout])) === "timeout") {
    console.log("# server did not stop within 10 s of SIGTERM: killing it");
    killServer("SIGKILL");
    await exited;
  }
}

// ---------------------------------------------------------------------------------------------
// The client's redirect URI: a tiny HTTP server that records what it receives
// ---------------------------------------------------------------------------------------------

async function startCallbackServer() {
  const hits = [];
  const srv = http.createServer((req, res) => {
    const url = new URL(req.url, "http://127.0.0.1");
    if (url.pathname !== "/callback") {
      // e.g. the browser's /favicon.ico
      res.writeHead(404, { "content-type": "text/plain; charset=utf-8" });
      res.end("not found");
      return;
    }
    hits.push({ query: Object.fromEntries(url.searchParams) });
    res.writeHead(200, { "content-type": "text/plain; charset=utf-8" });
    res.end("done");
  });
  await new Promise((resolve) => srv.listen(0, "127.0.0.1", resolve));
  return { server: srv, url: `http://127.0.0.1:${srv.address().port}/callback`, hits };
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const b64url = (buf) => Buffer.from(buf).toString("base64url");
function pkce() {
  const verifier = b64url(crypto.randomBytes(32));
  return { verifier, challenge: b64url(crypto.createHash("sha256").update(verifier).digest()) };
}

async function api(method, p, { json, form } = {}) {
  const headers = { accept: "application/json", origin: issuer };
  let body;
  if (json !== undefined) {
    headers["content-type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    headers["content-type"] = "application/x-www-form-urlencoded";
    body = new URLSearchParams(form).toString();
  }
  const res = await fetch(`${issuer}${p}`, { method, headers, body, redirect: "manual" });
  const text = await res.text();
  let data = text;
  try {
    data = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, headers: res.headers, data, text };
}

async function registerClient(name) {
  const reg = await api("POST", "/api/auth/mcp/register", {
    json: {
      client_name: name,
      redirect_uris: [callback.url],
      token_endpoint_auth_method: "none",
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      scope: SCOPE,
    },
  });
  assert.equal(reg.status, 201, `register client: ${reg.text}`);
  assert.ok(reg.data.client_id, "register: client_id");
  return reg.data;
}

function authorizeUrl(clientId, state, challenge) {
  const u = new URL(`${issuer}/api/auth/mcp/authorize`);
  u.search = new URLSearchParams({
    response_type: "code",
    client_id: clientId,
    redirect_uri: callback.url,
    scope: SCOPE,
    state,
    code_challenge: challenge,
    code_challenge_method: "S256",
    resource: mcpEndpoint,
  }).toString();
  return u.toString();
}

async function exchangeCode(clientId, code, verifier) {
  const tok = await api("POST", "/api/auth/mcp/token", {
    form: {
      grant_type: "authorization_code",
      code,
      code_verifier: verifier,
      redirect_uri: callback.url,
      client_id: clientId,
      resource: mcpEndpoint,
    },
  });
  assert.equal(tok.status, 200, `token exchange: ${tok.text}`);
  assert.ok(tok.data.access_token, "token response: access_token");
  assert.match(String(tok.data.token_type), /^bearer$/i, "token response: token_type");
  return tok.data;
}

// A browser context that records the final (non-redirect) response of every page navigation.
async function newContext() {
  const context = await browser.newContext({ viewport: { width: 1000, height: 800 } });
  context.setDefaultTimeout(PAGE_TIMEOUT_MS);
  context.setDefaultNavigationTimeout(PAGE_TIMEOUT_MS);
  const page = await context.newPage();
  const documents = []; // { url, status, headers: Promise<object> }, in arrival order
  page.on("response", (res) => {
    if (res.request().resourceType() !== "document") return;
    const headers = res.allHeaders().catch(() => res.headers());
    documents.push({ url: new URL(res.url()), status: res.status(), headers });
  });
  return { context, page, documents };
}

const pathIs = (p) => (url) => url.pathname === p;
const onIssuer = (p) => (url) => url.origin === issuer && url.pathname === p;

async function assertFrameProtection(documents, pagePath) {
  const doc = [...documents].reverse().find((d) => d.url.origin === issuer && d.url.pathname === pagePath && d.status === 200);
  assert.ok(doc, `a 200 response for ${pagePath} was seen (saw: ${documents.map((d) => `${d.status} ${d.url.pathname}`).join(", ")})`);
  const headers = await doc.headers;
  const csp = headers["content-security-policy"];
  assert.ok(csp, `${pagePath}: Content-Security-Policy header present`);
  assert.match(csp, /(^|;)\s*frame-ancestors\s+'none'\s*(;|$)/, `${pagePath}: CSP has frame-ancestors 'none' (got: ${csp})`);
  assert.equal(String(headers["x-frame-options"]).toUpperCase(), "DENY", `${pagePath}: X-Frame-Options: DENY`);
}

// Clicks a form's submit button and checks that the server answered the POST with a 303.
async function submit(page, buttonName, postPath) {
  const [res] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === "POST" && new URL(r.url()).pathname === postPath),
    page.getByRole("button", { name: buttonName }).click(),
  ]);
  if (res.status() !== 303) {
    await page.waitForLoadState("load").catch(() => {});
    const body = await page.locator("body").innerText({ timeout: 2_000 }).catch(() => "(unreadable)");
    const sent = await res.request().allHeaders();
    assert.fail(
      `"${buttonName}": POST ${postPath} answered ${res.status()}, expected 303; ` +
        `request Origin: ${sent.origin ?? "(none)"}, Sec-Fetch-Site: ${sent["sec-fetch-site"] ?? "(none)"}; ` +
        `page: ${body.replace(/\s+/g, " ").slice(0, 300)}`,
    );
  }
  return res;
}

async function screenshot(page, name) {
  const file = path.join(screenshotDir, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  screenshots.push(file);
  console.log(`# screenshot: ${file}`);
  return file;
}

async function waitForCallback(count) {
  const deadline = Date.now() + 5_000;
  while (callback.hits.length < count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.equal(callback.hits.length, count, "the callback server was called");
  return callback.hits[count - 1];
}

// Consent page: the client's name and every requested scope are on it; returns its text.
async function assertConsentPage(page, clientName) {
  await page.waitForURL(onIssuer("/consent"));
  const url = new URL(page.url());
  assert.ok(url.searchParams.get("consent_code"), "consent URL carries consent_code");
  const text = await page.locator("main").innerText();
  assert.ok(text.includes(clientName), `consent page names the client "${clientName}":\n${text}`);
  for (const scope of SCOPE.split(" ")) {
    assert.ok(text.includes(scope), `consent page lists scope ${scope}:\n${text}`);
  }
  await page.getByRole("button", { name: "Allow" }).waitFor();
  await page.getByRole("button", { name: "Deny" }).waitFor();
  return text;
}

// ---------------------------------------------------------------------------------------------
// Setup / teardown
// ---------------------------------------------------------------------------------------------

before(async () => {
  callback = await startCallbackServer();
  await startServer();
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  console.log(`# chromium ${browser.version()}`);
});

after(async () => {
  try {
    if (browser) await browser.close();
  } finally {
    await stopServer();
    if (callback) callback.server.close();
    if (screenshots.length) console.log(`# screenshots in ${screenshotDir}:\n${screenshots.map((s) => `#   ${s}`).join("\n")}`);
    if (process.env.E2E_KEEP_TMP) console.log(`# kept ${tmpDir}`);
    else fs.rmSync(tmpDir, { recursive: true, force: true });
  }
});

// Runs a test body in a fresh browser context. On failure, records where the browser was (URL,
// page text, a screenshot) and what the server printed, then closes the context.
async function withBrowser(t, name, fn) {
  const ctx = await newContext();
  try {
    await fn(ctx);
  } catch (e) {
    try {
      t.diagnostic(`browser was at: ${ctx.page.url()}`);
      t.diagnostic(`navigations: ${ctx.documents.map((d) => `${d.status} ${d.url.pathname}`).join(" -> ")}`);
      const text = await ctx.page.locator("body").innerText({ timeout: 2_000 });
      t.diagnostic(`page text: ${text.replace(/\s+/g, " ").slice(0, 600)}`);
      t.diagnostic(`failure screenshot: ${await screenshot(ctx.page, `FAILED-${name}`)}`);
    } catch {
      /* best effort */
    }
    t.diagnostic(`server output so far:\n${serverLog}`);
    throw e;
  } finally {
    await ctx.context.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

test("A: new user signs up from the sign-in page, allows access, client gets a code and a token", { timeout: 120_000 }, (t) =>
  withBrowser(t, "A", async ({ page, documents }) => {
    const clientName = "E2E Browser Client A";
    const client = await registerClient(clientName);
    const { verifier, challenge } = pkce();
    const state = b64url(crypto.randomBytes(16));
    const hitsBefore = callback.hits.length;
    // authorize without a session -> sign-in page carrying the original query
    await page.goto(authorizeUrl(client.client_id, state, challenge));
    await page.waitForURL(onIssuer("/sign-in"));
    assert.equal(new URL(page.url()).searchParams.get("client_id"), client.client_id, "sign-in URL keeps the authorize query");
    await page.getByRole("button", { name: "Sign in" }).waitFor();
    await assertFrameProtection(documents, "/sign-in");
    await screenshot(page, "sign-in");

    // -> sign-up page
    await page.getByRole("link", { name: "Create an account" }).click();
    await page.waitForURL(onIssuer("/sign-up"));
    await assertFrameProtection(documents, "/sign-up");
    const email = `a-${Date.now()}-${crypto.randomBytes(4).toString("hex")}@example.com`;
    await page.locator('input[name="name"]').fill("Alice Example");
    await page.locator('input[name="email"]').fill(email);
    await page.locator('input[name="password"]').fill("correct horse battery staple");
    await screenshot(page, "sign-up");
    await submit(page, "Create account", "/sign-up");

    // -> consent page
    await assertConsentPage(page, clientName);
    await assertFrameProtection(documents, "/consent");
    await screenshot(page, "consent");
    await submit(page, "Allow", "/consent");

    // -> the client's redirect URI
    await page.waitForURL(pathIs("/callback"));
    assert.equal((await page.locator("body").innerText()).trim(), "done");
    const hit = await waitForCallback(hitsBefore + 1);
    assert.ok(hit.query.code, `callback has a code: ${JSON.stringify(hit.query)}`);
    assert.equal(hit.query.state, state, "callback state");
    assert.equal(hit.query.iss, issuer, "callback iss");
    assert.equal(hit.query.error, undefined, "callback has no error");

    const tokens = await exchangeCode(client.client_id, hit.query.code, verifier);
    t.diagnostic(`token: type ${tokens.token_type}, expires_in ${tokens.expires_in}, scope "${tokens.scope}"`);
  }),
);

test("B: existing user signs in, denies, then authorizes again and allows", { timeout: 120_000 }, (t) =>
  withBrowser(t, "B", async ({ page, documents }) => {
    const clientName = "E2E Browser Client B";
    const email = `b-${Date.now()}-${crypto.randomBytes(4).toString("hex")}@example.com`;
    const password = "another long password";
    const signUp = await api("POST", "/api/auth/sign-up/email", { json: { email, password, name: "Bob Example" } });
    assert.equal(signUp.status, 200, `sign-up over the JSON API: ${signUp.text}`);

    const client = await registerClient(clientName);
    const hitsBefore = callback.hits.length;
    // 1st authorize: sign in, then deny
    const first = { ...pkce(), state: b64url(crypto.randomBytes(16)) };
    await page.goto(authorizeUrl(client.client_id, first.state, first.challenge));
    await page.waitForURL(onIssuer("/sign-in"));
    await assertFrameProtection(documents, "/sign-in");
    await page.locator('input[name="email"]').fill(email);
    await page.locator('input[name="password"]').fill(password);
    await submit(page, "Sign in", "/sign-in");

    await assertConsentPage(page, clientName);
    await assertFrameProtection(documents, "/consent");
    await submit(page, "Deny", "/consent");
    await page.waitForURL(pathIs("/callback"));
    const denied = await waitForCallback(hitsBefore + 1);
    assert.equal(denied.query.error, "access_denied", `callback after Deny: ${JSON.stringify(denied.query)}`);
    assert.equal(denied.query.state, first.state, "callback state after Deny");
    assert.equal(denied.query.iss, issuer, "callback iss after Deny");
    assert.equal(denied.query.code, undefined, "no code after Deny");

    // 2nd authorize: already signed in, consent asked again (nothing was granted), allow
    const second = { ...pkce(), state: b64url(crypto.randomBytes(16)) };
    await page.goto(authorizeUrl(client.client_id, second.state, second.challenge));
    await assertConsentPage(page, clientName);
    await screenshot(page, "consent-signed-in");
    await submit(page, "Allow", "/consent");
    await page.waitForURL(pathIs("/callback"));
    const allowed = await waitForCallback(hitsBefore + 2);
    assert.ok(allowed.query.code, `callback has a code: ${JSON.stringify(allowed.query)}`);
    assert.equal(allowed.query.state, second.state, "callback state after Allow");
    assert.equal(allowed.query.iss, issuer, "callback iss after Allow");

    await exchangeCode(client.client_id, allowed.query.code, second.verifier);
  }),
);
