// End-to-end test of the operator's console (SECURITY A1) in a real browser.
//
// Starts `mcpauth serve` on a fresh SQLite file, with an admin made by the CLI (`mcpauth user
// create`, `mcpauth user admin`). Debian's Chromium (headless, playwright-core) signs the admin
// in, finds a user, revokes the grant of a client that holds a real access token (the token then
// fails at the MCP endpoint), disables the user (their session and new token die), filters the
// audit log and exports it as CSV and JSON. A non-admin and a signed-out browser get 404 on every
// console URL; a cross-site post and a post with a wrong CSRF token are refused; a second server
// with a 3-second `admin_reauth_secs` sends the admin to sign in again and back. Screenshots
// (desktop and phone) go to $SCREENSHOT_DIR.
//
//   npm ci && node --test console.test.mjs   # from this folder, after `cargo build -p mcpauth-server`
//
// Environment: MCPAUTH_BIN, CHROMIUM_BIN, SCREENSHOT_DIR, E2E_KEEP_TMP as for browser.test.mjs.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import crypto from "node:crypto";
import dns from "node:dns";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

dns.setDefaultResultOrder("ipv4first");

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = path.resolve(HERE, "..", "..");
const CHROMIUM = process.env.CHROMIUM_BIN || "/usr/bin/chromium";
const PASSWORD = "correct horse battery staple";
const ADMIN = "ops@example.com";
const CONSOLE = "/api/auth/admin";
const TIMEOUT_MS = 20_000;
const PHONE = { width: 390, height: 844 };

function resolveBinary() {
  const fromEnv = process.env.MCPAUTH_BIN;
  const targetDir = process.env.CARGO_TARGET_DIR
    ? path.resolve(REPO_ROOT, process.env.CARGO_TARGET_DIR)
    : path.join(REPO_ROOT, "target");
  const candidate = fromEnv ? path.resolve(REPO_ROOT, fromEnv) : path.join(targetDir, "debug", "mcpauth");
  if (!fs.existsSync(candidate)) {
    throw new Error(`mcpauth binary not found at ${candidate}: run \`cargo build -p mcpauth-server\` or set MCPAUTH_BIN`);
  }
  return candidate;
}

const tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), "mcpauth-e2e-console-"));
const screenshotDir = process.env.SCREENSHOT_DIR
  ? path.resolve(process.env.SCREENSHOT_DIR)
  : fs.mkdtempSync(path.join(os.tmpdir(), "mcpauth-screenshots-"));
fs.mkdirSync(screenshotDir, { recursive: true });

// ---------------------------------------------------------------------------------------------
// Servers: the CLI makes the admin, then `serve`
// ---------------------------------------------------------------------------------------------

const servers = [];

function serverEnv(extra = {}) {
  const env = { ...process.env, NO_COLOR: "1", MCPAUTH_RATE_LIMITS__ENABLED: "false", ...extra };
  delete env.MCPAUTH_BIN;
  return env;
}

async function startServer(name, extraEnv = {}) {
  const bin = resolveBinary();
  const dir = fs.mkdtempSync(path.join(tmpDir, `${name}-`));
  const db = `sqlite://${path.join(dir, "mcpauth.db")}`;
  const env = serverEnv(extraEnv);
  const cli = (...args) => execFileSync(bin, ["--database-url", db, ...args], { cwd: dir, env, encoding: "utf8" });
  cli("user", "create", "--email", ADMIN, "--password", PASSWORD, "--name", "Ops");
  assert.match(cli("user", "admin", "--email", ADMIN), /is now an admin/);
  const child = spawn(bin, ["serve", "--bind", "127.0.0.1:0", "--database-url", db], {
    cwd: dir,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const entry = { child, log: "" };
  servers.push(entry);
  child.stderr.setEncoding("utf8");
  child.stdout.setEncoding("utf8");
  child.stderr.on("data", (d) => (entry.log += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no banner within 60 s:\n${entry.log}`)), 60_000);
    child.stdout.on("data", (d) => {
      entry.log += d;
      const found = /^\s*Issuer:\s*(\S+)\s*$/m.exec(entry.log);
      if (found) {
        clearTimeout(timer);
        resolve(found[1].replace(/\/+$/, ""));
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited early (code ${code}):\n${entry.log}`));
    });
  });
}

function stopServers() {
  for (const { child } of servers) {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  }
}
process.on("exit", stopServers);

// ---------------------------------------------------------------------------------------------
// A client: its redirect URI (which also serves the cross-site attacker's page), PKCE, tokens
// ---------------------------------------------------------------------------------------------

let callback; // { server, url, origin, hits, attack }
async function startCallbackServer() {
  const hits = [];
  const state = { attack: "" };
  const srv = http.createServer((req, res) => {
    const url = new URL(req.url, "http://127.0.0.1");
    if (url.pathname === "/callback") {
      hits.push(Object.fromEntries(url.searchParams));
      res.writeHead(200, { "content-type": "text/plain; charset=utf-8" });
      res.end("done");
    } else if (url.pathname === "/attack") {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      res.end(state.attack);
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise((resolve) => srv.listen(0, "127.0.0.1", resolve));
  const origin = `http://127.0.0.1:${srv.address().port}`;
  return { server: srv, url: `${origin}/callback`, origin, hits, state };
}

const b64url = (buf) => Buffer.from(buf).toString("base64url");

async function registerClient(issuer, name) {
  const res = await fetch(`${issuer}/api/auth/mcp/register`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      client_name: name,
      redirect_uris: [callback.url],
      token_endpoint_auth_method: "none",
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
    }),
  });
  assert.equal(res.status, 201);
  return (await res.json()).client_id;
}

// Authorizes `clientId` in `page` (signed in), approving consent when asked; returns tokens.
async function tokensFor(issuer, page, clientId) {
  const verifier = b64url(crypto.randomBytes(32));
  const challenge = b64url(crypto.createHash("sha256").update(verifier).digest());
  const before = callback.hits.length;
  const u = new URL(`${issuer}/api/auth/mcp/authorize`);
  u.search = new URLSearchParams({
    response_type: "code",
    client_id: clientId,
    redirect_uri: callback.url,
    scope: "openid mcp:tools",
    state: "st",
    code_challenge: challenge,
    code_challenge_method: "S256",
  }).toString();
  await page.goto(u.toString());
  if (new URL(page.url()).pathname === "/consent") {
    await Promise.all([page.waitForURL((url) => url.pathname === "/callback"), page.getByRole("button", { name: "Allow" }).click()]);
  }
  assert.equal(callback.hits.length, before + 1, "the client got its code");
  const code = callback.hits[before].code;
  const res = await fetch(`${issuer}/api/auth/mcp/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "authorization_code",
      code,
      code_verifier: verifier,
      redirect_uri: callback.url,
      client_id: clientId,
    }).toString(),
  });
  assert.equal(res.status, 200);
  return res.json();
}

// The MCP endpoint's answer to `initialize` with this access token: its status.
async function mcpStatus(issuer, token) {
  const res = await fetch(`${issuer}/api/mcp`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${token}`,
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
    },
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: 1,
      method: "initialize",
      params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "e2e", version: "1" } },
    }),
  });
  await res.arrayBuffer();
  return res.status;
}

// ---------------------------------------------------------------------------------------------
// Browser helpers
// ---------------------------------------------------------------------------------------------

let browser;

async function newPage(viewport = { width: 1200, height: 900 }) {
  const context = await browser.newContext({ viewport, acceptDownloads: true });
  context.setDefaultTimeout(TIMEOUT_MS);
  context.setDefaultNavigationTimeout(TIMEOUT_MS);
  return { context, page: await context.newPage() };
}

async function screenshot(page, name) {
  const file = path.join(screenshotDir, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`# screenshot: ${file}`);
}

async function phoneScreenshot(context, url, name) {
  const page = await context.newPage();
  await page.setViewportSize(PHONE);
  await page.goto(url);
  await screenshot(page, name);
  await page.close();
}

async function clickAndWait(page, locator) {
  const [response] = await Promise.all([page.waitForNavigation({ waitUntil: "load" }), locator.click()]);
  return response?.status();
}

async function signIn(page, issuer, email, returnTo) {
  const target = returnTo ? `${issuer}/sign-in?return_to=${encodeURIComponent(returnTo)}` : `${issuer}/sign-in`;
  await page.goto(target);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(PASSWORD);
  await clickAndWait(page, page.getByRole("button", { name: "Sign in" }));
}

async function signUp(page, issuer, email, name) {
  await page.goto(`${issuer}/sign-up`);
  await page.getByLabel("Name").fill(name);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(PASSWORD);
  await clickAndWait(page, page.getByRole("button", { name: "Create account" }));
}

// ---------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------

before(async () => {
  callback = await startCallbackServer();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-sync", "--no-first-run"],
  });
});

after(async () => {
  await browser?.close();
  stopServers();
  callback?.server.close();
  if (!process.env.E2E_KEEP_TMP) fs.rmSync(tmpDir, { recursive: true, force: true });
});

test("a1: an admin finds a user, revokes a grant, disables the user, filters and exports the audit log", { timeout: 180_000 }, async () => {
  const issuer = await startServer("main");
  const alice = `alice-${Date.now()}@example.com`;

  // Alice connects an MCP client: a real access token that works at the MCP endpoint.
  const user = await newPage();
  await signUp(user.page, issuer, alice, "Alice Liddell");
  const clientId = await registerClient(issuer, "Alice's Editor");
  const first = await tokensFor(issuer, user.page, clientId);
  assert.equal(await mcpStatus(issuer, first.access_token), 200, "the token works");

  // The admin signs in and lands on the overview.
  const admin = await newPage();
  await signIn(admin.page, issuer, ADMIN, CONSOLE);
  assert.equal(new URL(admin.page.url()).pathname, CONSOLE);
  assert.match(await admin.page.locator("h1").innerText(), /Overview/);
  assert.equal(await admin.page.locator("svg.chart").count(), 2, "two inline SVG charts");
  await screenshot(admin.page, "console-01-overview");
  await phoneScreenshot(admin.context, `${issuer}${CONSOLE}`, "console-01-overview-phone");

  // Find Alice.
  await clickAndWait(admin.page, admin.page.getByRole("link", { name: "Users", exact: true }));
  await admin.page.getByLabel("Email or name contains").fill("alice");
  await clickAndWait(admin.page, admin.page.getByRole("button", { name: "Search" }));
  await screenshot(admin.page, "console-02-users-search");
  await clickAndWait(admin.page, admin.page.getByRole("link", { name: alice }));
  assert.match(await admin.page.locator("h1").innerText(), new RegExp(alice.replace(/[.]/g, "\\.")));
  const userUrl = admin.page.url();
  assert.match(await admin.page.locator("#grants-heading").innerText(), /Grants \(1\)/);
  await screenshot(admin.page, "console-03-user");
  await phoneScreenshot(admin.context, userUrl, "console-03-user-phone");

  // Revoke the grant: the token stops working at the MCP endpoint.
  assert.equal(await clickAndWait(admin.page, admin.page.getByRole("button", { name: "Revoke", exact: true })), 200);
  assert.match(await admin.page.getByRole("status").innerText(), /Revoked 1 grant/);
  assert.equal(await mcpStatus(issuer, first.access_token), 401, "the revoked token fails");

  // Alice connects again (consent asked again); then the admin disables her.
  const second = await tokensFor(issuer, user.page, clientId);
  assert.equal(await mcpStatus(issuer, second.access_token), 200);
  await admin.page.goto(userUrl);
  assert.equal(await clickAndWait(admin.page, admin.page.getByRole("button", { name: "Disable" })), 200);
  assert.match(await admin.page.getByRole("status").innerText(), /is disabled/);
  await screenshot(admin.page, "console-04-user-disabled");
  assert.equal(await mcpStatus(issuer, second.access_token), 401, "the disabled user's token fails");
  await user.page.goto(`${issuer}/account`);
  assert.equal(new URL(user.page.url()).pathname, "/sign-in", "the disabled user's session ended");

  // The clients and grants pages.
  await admin.page.goto(`${issuer}${CONSOLE}/clients`);
  assert.match(await admin.page.locator("main").innerText(), /Alice's Editor/);
  await screenshot(admin.page, "console-05-clients");
  await phoneScreenshot(admin.context, `${issuer}${CONSOLE}/clients`, "console-05-clients-phone");
  await admin.page.goto(`${issuer}${CONSOLE}/grants`);
  await screenshot(admin.page, "console-06-grants");

  // The audit log, filtered to the admin's actions, then exported.
  await admin.page.goto(`${issuer}${CONSOLE}/audit`);
  await admin.page.getByLabel("Kind").fill("admin");
  await clickAndWait(admin.page, admin.page.getByRole("button", { name: "Filter" }));
  const rows = await admin.page.locator("table.audit tbody tr").allInnerTexts();
  assert.ok(rows.length >= 2, rows.join("\n"));
  assert.ok(rows.every((r) => /admin\./.test(r)), rows.join("\n"));
  assert.ok(rows.some((r) => r.includes("admin.grant.revoke")) && rows.some((r) => r.includes("admin.user.disable")));
  assert.ok(rows.some((r) => r.includes(ADMIN)), "the acting admin is recorded");
  await screenshot(admin.page, "console-07-audit-filtered");
  await phoneScreenshot(admin.context, admin.page.url(), "console-07-audit-filtered-phone");
  for (const [format, check] of [
    ["CSV", (text) => assert.match(text.split("\r\n")[0], /^at,time_utc,kind,user_id,client_id,ip,detail$/)],
    ["JSON", (text) => assert.ok(JSON.parse(text).every((e) => e.kind.startsWith("admin.")))],
  ]) {
    const [download] = await Promise.all([
      admin.page.waitForEvent("download"),
      admin.page.getByRole("link", { name: format, exact: true }).click(),
    ]);
    const text = fs.readFileSync(await download.path(), "utf8");
    check(text);
    assert.match(text, /admin\.user\.disable/);
  }

  for (const c of [user, admin]) await c.context.close();
});

test("a1: a non-admin and a signed-out browser get 404 on every console URL; cross-site and forged posts are refused", { timeout: 120_000 }, async () => {
  const issuer = await startServer("gate");
  const bob = `bob-${Date.now()}@example.com`;
  const nonAdmin = await newPage();
  await signUp(nonAdmin.page, issuer, bob, "Bob");
  const signedOut = await newPage();
  const paths = ["", "/users", "/users/whoever", "/clients", "/grants", "/audit", "/audit/export?format=csv", "/api/overview", "/api/users", "/api/audit"];
  for (const { page } of [nonAdmin, signedOut]) {
    for (const p of paths) {
      const response = await page.goto(`${issuer}${CONSOLE}${p}`);
      assert.equal(response.status(), 404, `GET ${p}`);
      assert.doesNotMatch(await page.content(), /console|Overview/i);
    }
    for (const p of ["/users/whoever/disable", "/grants/revoke", "/clients/purge-unused", "/api/users/whoever/disable"]) {
      const response = await page.request.post(`${issuer}${CONSOLE}${p}`, { form: { csrf_token: "x" } });
      assert.equal(response.status(), 404, `POST ${p}`);
    }
  }
  await screenshot(nonAdmin.page, "console-08-non-admin-404");

  // The admin, in another tab, visits a page on another site that posts to the console.
  const admin = await newPage();
  await signIn(admin.page, issuer, ADMIN, CONSOLE);
  await admin.page.goto(`${issuer}${CONSOLE}/users?q=bob`);
  await clickAndWait(admin.page, admin.page.getByRole("link", { name: bob }));
  const userUrl = admin.page.url();
  const action = `${userUrl}/disable`;
  callback.state.attack = `<!doctype html><form method="post" action="${action}"><input name="csrf_token" value="guess"></form><script>document.forms[0].submit()</script>`;
  const attacker = await admin.context.newPage();
  const [crossSite] = await Promise.all([
    attacker.waitForResponse((r) => r.url() === action),
    attacker.goto(`${callback.origin}/attack`),
  ]);
  // The session cookie (SameSite=Lax) does not travel on a cross-site post: nobody is signed in.
  assert.equal(crossSite.status(), 404, "cross-site post");
  await attacker.close();
  // A same-origin form with a forged CSRF token.
  await admin.page.goto(userUrl);
  await admin.page.locator('form[action$="/disable"] input[name="csrf_token"]').evaluate((input) => (input.value = "forged"));
  assert.equal(await clickAndWait(admin.page, admin.page.getByRole("button", { name: "Disable" })), 403);
  await screenshot(admin.page, "console-09-csrf-refused");
  await admin.page.goto(userUrl);
  assert.match(await admin.page.locator(".subtitle").innerText(), /active/, "Bob is still enabled");

  for (const c of [nonAdmin, signedOut, admin]) await c.context.close();
});

test("a1: after admin_reauth_secs the admin signs in again and comes back to the page", { timeout: 60_000 }, async () => {
  const issuer = await startServer("reauth", { MCPAUTH_ADMIN_REAUTH_SECS: "3" });
  const admin = await newPage();
  await signIn(admin.page, issuer, ADMIN, `${CONSOLE}/audit`);
  assert.equal(new URL(admin.page.url()).pathname, `${CONSOLE}/audit`);
  await new Promise((resolve) => setTimeout(resolve, 4_000));
  await admin.page.goto(`${issuer}${CONSOLE}/users?q=ops`);
  const url = new URL(admin.page.url());
  assert.equal(url.pathname, "/sign-in", "sent to sign in again");
  assert.equal(url.searchParams.get("return_to"), `${CONSOLE}/users?q=ops`);
  await screenshot(admin.page, "console-10-reauth-sign-in");
  await admin.page.getByLabel("Email").fill(ADMIN);
  await admin.page.getByLabel("Password").fill(PASSWORD);
  await clickAndWait(admin.page, admin.page.getByRole("button", { name: "Sign in" }));
  const back = new URL(admin.page.url());
  assert.equal(`${back.pathname}${back.search}`, `${CONSOLE}/users?q=ops`, "back where the admin was");
  assert.match(await admin.page.locator("h1").innerText(), /Users/);
  await admin.context.close();
});
