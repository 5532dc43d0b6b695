// End-to-end test of sign-in through an OpenID provider, in a real browser.
//
// Runs panva's oidc-provider (OpenID-certified, pinned in package.json) in this process as the
// upstream, starts `mcpauth serve` with two `[[identity_providers]]` pointing at it, and drives
// Debian's Chromium (headless, through playwright-core):
//
//   1. an MCP client (public, PKCE S256) sends the browser to mcpauth's authorization endpoint;
//   2. the sign-in page offers "Continue with …"; the user signs in at oidc-provider (its
//      development login and consent screens) and comes back through mcpauth's callback;
//   3. the MCP authorization resumes: mcpauth's consent page, then the code at the client, which
//      exchanges it for a token that works;
//   4. on the account page the user links the second provider and sees both sign-in methods;
//   5. the spent callback URL, replayed, ends on mcpauth's error page.
//
// oidc-provider puts no email in its id_tokens when an access token can fetch it
// (`conformIdTokenClaims`), so this also exercises mcpauth's userinfo path.
//
//   npm ci && node --test identity_provider.test.mjs     # after `cargo build -p mcpauth-server`
//
// Environment: MCPAUTH_BIN, CHROMIUM_BIN, SCREENSHOT_DIR, E2E_KEEP_TMP (as browser.test.mjs).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import crypto from "node:crypto";
import dns from "node:dns";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import Provider from "oidc-provider";

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
const SCOPE = "openid profile email";
const PAGE_TIMEOUT_MS = 20_000;
const PHONE = { width: 390, height: 844 };

// The two providers mcpauth is configured with, both served by the one oidc-provider.
const PROVIDERS = [
  { id: "example-sso", name: "Example SSO", clientId: "mcpauth-sso", secret: crypto.randomBytes(24).toString("hex") },
  { id: "acme", name: "Acme Workforce", clientId: "mcpauth-acme", secret: crypto.randomBytes(24).toString("hex") },
];

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
  if (!found) throw new Error(`mcpauth binary not found (tried ${candidates.join(", ")}); set MCPAUTH_BIN`);
  return found;
}

const tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), "mcpauth-e2e-upstream-"));
const screenshotDir = process.env.SCREENSHOT_DIR
  ? path.resolve(process.env.SCREENSHOT_DIR)
  : fs.mkdtempSync(path.join(os.tmpdir(), "mcpauth-screenshots-"));
fs.mkdirSync(screenshotDir, { recursive: true });

let server; // mcpauth child process
let serverLog = "";
let issuer; // http://localhost:PORT
let mcpEndpoint;
let op; // { server, issuer }
let callback; // the MCP client's redirect URI: { server, url, hits }
let browser;
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
process.on("exit", () => killServer("SIGKILL"));
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(sig, () => {
    killServer("SIGKILL");
    if (!process.env.E2E_KEEP_TMP) fs.rmSync(tmpDir, { recursive: true, force: true });
    process.exit(128 + (os.constants.signals[sig] ?? 1));
  });
}

async function freePort() {
  const probe = net.createServer();
  await new Promise((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address();
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

// The upstream: oidc-provider with a confidential client per mcpauth provider entry, its
// development login (any login name, any password) and consent screens, and accounts whose
// email is verified.
async function startOp(mcpauthIssuer) {
  const port = await freePort();
  const opIssuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(opIssuer, {
    clients: PROVIDERS.map((p) => ({
      client_id: p.clientId,
      client_secret: p.secret,
      redirect_uris: [`${mcpauthIssuer}/api/auth/callback/${p.id}`],
      response_types: ["code"],
      grant_types: ["authorization_code"],
      token_endpoint_auth_method: "client_secret_basic",
    })),
    claims: { openid: ["sub"], email: ["email", "email_verified"], profile: ["name"] },
    async findAccount(_ctx, id) {
      return {
        accountId: id,
        async claims() {
          return { sub: id, email: `${id}@example.com`, email_verified: true, name: `${id[0].toUpperCase()}${id.slice(1)} Example` };
        },
      };
    },
    pkce: { required: () => true },
    cookies: { keys: [crypto.randomBytes(32).toString("hex")] },
    features: { devInteractions: { enabled: true } },
  });
  // oidc-provider logs its development-only warnings; they are expected here.
  const srv = http.createServer(provider.callback());
  await new Promise((resolve) => srv.listen(port, "127.0.0.1", resolve));
  console.log(`# oidc-provider at ${opIssuer}`);
  return { server: srv, issuer: opIssuer };
}

async function startServer(port) {
  const bin = resolveBinary();
  const config = path.join(tmpDir, "mcpauth.toml");
  const toml = PROVIDERS.map(
    (p) => `[[identity_providers]]
id = "${p.id}"
name = "${p.name}"
issuer = "${op.issuer}"
client_id = "${p.clientId}"
client_secret = "${p.secret}"
`,
  ).join("\n");
  fs.writeFileSync(config, toml);
  const args = [
    "serve",
    "--config", config,
    "--bind", `127.0.0.1:${port}`,
    "--issuer", `http://localhost:${port}`,
    "--database-url", `sqlite://${path.join(tmpDir, "mcpauth.db")}`,
  ];
  console.log(`# starting ${bin} ${args.join(" ")}`);
  const env = { ...process.env, MCPAUTH_RATE_LIMITS__ENABLED: "false", NO_COLOR: "1" };
  delete env.MCPAUTH_BIN;
  server = spawn(bin, args, { cwd: tmpDir, env, stdio: ["ignore", "pipe", "pipe"] });
  server.stdout.setEncoding("utf8");
  server.stderr.setEncoding("utf8");
  server.stderr.on("data", (d) => (serverLog += d));
  await new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`no banner within 60 s:\n${serverLog}`)), 60_000);
    const onData = (d) => {
      out += d;
      serverLog += d;
      if (/^\s*Listening on:/m.test(out)) {
        clearTimeout(timer);
        server.stdout.off("data", onData);
        server.stdout.on("data", (more) => (serverLog += more));
        resolve();
      }
    };
    server.stdout.on("data", onData);
    server.once("exit", (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`server exited early (code ${code}, signal ${sig}):\n${serverLog}`));
    });
  });
  const health = await fetch(`${issuer}/healthz`);
  assert.equal(health.status, 200, "GET /healthz");
}

async function stopServer() {
  if (!server || server.exitCode !== null || server.signalCode !== null) return;
  const exited = new Promise((resolve) => server.once("exit", resolve));
  killServer("SIGTERM");
  const timeout = new Promise((resolve) => setTimeout(() => resolve("timeout"), 10_000));
  if ((await Promise.race([exited, timeout])) === "timeout") {
    killServer("SIGKILL");
    await exited;
  }
}

async function startCallbackServer() {
  const hits = [];
  const srv = http.createServer((req, res) => {
    const url = new URL(req.url, "http://127.0.0.1");
    if (url.pathname !== "/callback") {
      res.writeHead(404).end("not found");
      return;
    }
    hits.push(Object.fromEntries(url.searchParams));
    res.writeHead(200, { "content-type": "text/plain; charset=utf-8" }).end("done");
  });
  await new Promise((resolve) => srv.listen(0, "127.0.0.1", resolve));
  return { server: srv, url: `http://127.0.0.1:${srv.address().port}/callback`, hits };
}

const b64url = (buf) => Buffer.from(buf).toString("base64url");

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
  return { status: res.status, data, text };
}

async function screenshot(page, name) {
  const file = path.join(screenshotDir, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  screenshots.push(file);
  console.log(`# screenshot: ${file}`);
}

// The same page again at a phone's width: nothing may be wider than the screen.
async function phoneScreenshot(context, url, name) {
  const phone = await context.newPage();
  await phone.setViewportSize(PHONE);
  await phone.goto(url);
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `${name}: nothing wider than a phone (overflow ${overflow}px)`);
  await screenshot(phone, name);
  await phone.close();
}

// At oidc-provider: its development login form (any login, any password), then its consent
// screen; either may be skipped when the provider remembers the user.
async function signInAtProvider(page, login) {
  await page.waitForURL((url) => url.origin === op.issuer || url.origin === issuer);
  if (new URL(page.url()).origin !== op.issuer) return;
  const loginField = page.locator('input[name="login"]');
  if (await loginField.count()) {
    await loginField.fill(login);
    await page.locator('input[name="password"]').fill("any password will do");
    await page.getByRole("button", { name: "Sign-in" }).click();
    await page.waitForURL((url) => url.origin === op.issuer || url.origin === issuer);
  }
  if (new URL(page.url()).origin === op.issuer) {
    await page.getByRole("button", { name: "Continue" }).click();
  }
  await page.waitForURL((url) => url.origin === issuer);
}

before(async () => {
  const port = await freePort();
  issuer = `http://localhost:${port}`;
  mcpEndpoint = `${issuer}/api/mcp`;
  callback = await startCallbackServer();
  op = await startOp(issuer);
  await startServer(port);
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
});

after(async () => {
  try {
    if (browser) await browser.close();
  } finally {
    await stopServer();
    callback?.server.close();
    op?.server.close();
    if (screenshots.length) console.log(`# screenshots in ${screenshotDir}:\n${screenshots.map((s) => `#   ${s}`).join("\n")}`);
    if (process.env.E2E_KEEP_TMP) console.log(`# kept ${tmpDir}`);
    else fs.rmSync(tmpDir, { recursive: true, force: true });
  }
});

test("sign in through oidc-provider, complete an MCP authorization, link a second provider", { timeout: 180_000 }, async (t) => {
  const context = await browser.newContext({ viewport: { width: 1000, height: 800 } });
  context.setDefaultTimeout(PAGE_TIMEOUT_MS);
  context.setDefaultNavigationTimeout(PAGE_TIMEOUT_MS);
  const page = await context.newPage();
  const callbacks = []; // mcpauth callback URLs the browser visited
  page.on("request", (req) => {
    const url = new URL(req.url());
    if (url.origin === issuer && url.pathname.startsWith("/api/auth/callback/")) callbacks.push(req.url());
  });
  try {
    // 1. An MCP client registers and sends the browser to authorize.
    const reg = await api("POST", "/api/auth/mcp/register", {
      json: {
        client_name: "E2E Upstream Client",
        redirect_uris: [callback.url],
        token_endpoint_auth_method: "none",
        grant_types: ["authorization_code", "refresh_token"],
        response_types: ["code"],
      },
    });
    assert.equal(reg.status, 201, reg.text);
    const verifier = b64url(crypto.randomBytes(32));
    const challenge = b64url(crypto.createHash("sha256").update(verifier).digest());
    const state = b64url(crypto.randomBytes(16));
    const authorize = new URL(`${issuer}/api/auth/mcp/authorize`);
    authorize.search = new URLSearchParams({
      response_type: "code",
      client_id: reg.data.client_id,
      redirect_uri: callback.url,
      scope: SCOPE,
      state,
      code_challenge: challenge,
      code_challenge_method: "S256",
      resource: mcpEndpoint,
    }).toString();
    await page.goto(authorize.toString());

    // 2. The sign-in page: both providers next to the password form.
    await page.waitForURL((url) => url.origin === issuer && url.pathname === "/sign-in");
    for (const p of PROVIDERS) await page.getByRole("button", { name: `Continue with ${p.name}` }).waitFor();
    await page.getByLabel("Email").waitFor();
    await screenshot(page, "upstream-sign-in");
    await phoneScreenshot(context, page.url(), "upstream-sign-in-phone");

    await page.getByRole("button", { name: `Continue with ${PROVIDERS[0].name}` }).click();
    await signInAtProvider(page, "ada");

    // 3. Back at mcpauth: the authorization resumes with mcpauth's own consent.
    await page.waitForURL((url) => url.origin === issuer && url.pathname === "/consent");
    assert.ok((await page.locator("main").innerText()).includes("E2E Upstream Client"));
    await page.getByRole("button", { name: "Allow" }).click();
    const deadline = Date.now() + 5_000;
    while (callback.hits.length < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.equal(callback.hits.length, 1, "the client got its answer");
    const answer = callback.hits[0];
    assert.equal(answer.state, state);
    assert.equal(answer.iss, issuer);
    const token = await api("POST", "/api/auth/mcp/token", {
      form: {
        grant_type: "authorization_code",
        code: answer.code,
        code_verifier: verifier,
        redirect_uri: callback.url,
        client_id: reg.data.client_id,
        resource: mcpEndpoint,
      },
    });
    assert.equal(token.status, 200, token.text);
    const session = await fetch(`${issuer}/api/auth/mcp/get-session`, {
      headers: { authorization: `Bearer ${token.data.access_token}` },
    });
    assert.equal(session.status, 200, "the token works");

    // The user was created from the upstream identity (email from userinfo, verified).
    // (The pages' CSP allows no fetch from them: ask with the context's cookies instead.)
    const who = await (await context.request.get(`${issuer}/api/auth/get-session`)).json();
    assert.equal(who.user.email, "ada@example.com");
    assert.equal(who.user.emailVerified, true);
    assert.equal(who.user.name, "Ada Example");

    // 4. The account page: one sign-in method; link the second provider.
    await page.goto(`${issuer}/account`);
    await page.getByRole("heading", { name: "Sign-in methods" }).waitFor();
    assert.match(await page.locator("#sign-in-methods").innerText(), /only way to sign in/);
    assert.equal(await page.getByRole("button", { name: /^Unlink/ }).count(), 0, "the last way in has no Unlink");
    assert.equal(await page.getByRole("heading", { name: "Change password" }).count(), 0, "no password to change");
    await screenshot(page, "upstream-account-one-method");
    await page.getByRole("button", { name: `Link ${PROVIDERS[1].name}` }).click();
    await signInAtProvider(page, "ada");
    await page.waitForURL((url) => url.origin === issuer && url.pathname === "/account");
    const methods = await page.locator("#sign-in-methods").innerText();
    for (const p of PROVIDERS) assert.ok(methods.includes(p.name), `lists ${p.name}:\n${methods}`);
    await page.getByRole("button", { name: `Unlink ${PROVIDERS[0].name}` }).waitFor();
    await page.locator("#sign-in-methods").scrollIntoViewIfNeeded();
    await screenshot(page, "upstream-account-sign-in-methods");
    await phoneScreenshot(context, `${issuer}/account#sign-in-methods`, "upstream-account-sign-in-methods-phone");

    // 5. A spent callback URL, replayed: mcpauth's error page, not a sign-in.
    assert.ok(callbacks.length >= 2, `callbacks seen: ${callbacks.join(", ")}`);
    const replay = await page.goto(callbacks[0]);
    assert.equal(replay.status(), 400);
    assert.match(await page.locator("main").innerText(), /expired or was already completed/);
    await screenshot(page, "upstream-error-replayed-state");
  } catch (e) {
    t.diagnostic(`browser was at: ${page.url()}`);
    try {
      t.diagnostic(`page text: ${(await page.locator("body").innerText({ timeout: 2_000 })).replace(/\s+/g, " ").slice(0, 600)}`);
      await screenshot(page, "FAILED-upstream");
    } catch {
      /* best effort */
    }
    t.diagnostic(`server output:\n${serverLog}`);
    throw e;
  } finally {
    await context.close();
  }
});
