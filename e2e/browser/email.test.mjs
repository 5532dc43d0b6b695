// End-to-end test of password reset and email verification (SECURITY S30) in a real browser,
// with the mail received by a real SMTP server.
//
// Starts an SMTP server (nodemailer's `smtp-server`, pinned in package.json) on a loopback port
// and `mcpauth serve` sending to it (`[smtp]` from MCPAUTH_SMTP__* variables, plain SMTP on
// loopback). Debian's Chromium (headless, playwright-core) signs up, follows the verification
// link taken from the received mail, asks for a password reset from the sign-in page, opens the
// reset link from the mail, sets a new password and signs in with it. A second server with
// `email_verification = "required"` shows the page an unverified sign-in gets. Every new page is
// screenshotted (desktop, and a phone-sized viewport for the forms) into $SCREENSHOT_DIR.
//
//   npm ci && node --test email.test.mjs   # from this folder, after `cargo build -p mcpauth-server`
//
// Environment: MCPAUTH_BIN, CHROMIUM_BIN, SCREENSHOT_DIR, E2E_KEEP_TMP as for browser.test.mjs.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import dns from "node:dns";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { SMTPServer } from "smtp-server";

dns.setDefaultResultOrder("ipv4first");

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = path.resolve(HERE, "..", "..");
const CHROMIUM = process.env.CHROMIUM_BIN || "/usr/bin/chromium";
const PASSWORD = "correct horse battery staple";
const NEW_PASSWORD = "a fresh passphrase after the reset";
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

const tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), "mcpauth-e2e-email-"));
const screenshotDir = process.env.SCREENSHOT_DIR
  ? path.resolve(process.env.SCREENSHOT_DIR)
  : fs.mkdtempSync(path.join(os.tmpdir(), "mcpauth-screenshots-"));
fs.mkdirSync(screenshotDir, { recursive: true });

// ---------------------------------------------------------------------------------------------
// The SMTP server: every message received, in order
// ---------------------------------------------------------------------------------------------

const inbox = [];
const waiting = [];
let smtp;

async function startSmtp() {
  smtp = new SMTPServer({
    authOptional: true,
    disabledCommands: ["STARTTLS", "AUTH"],
    logger: false,
    onData(stream, session, done) {
      const chunks = [];
      stream.on("data", (c) => chunks.push(c));
      stream.on("end", () => {
        const mail = {
          to: session.envelope.rcptTo.map((r) => r.address),
          raw: Buffer.concat(chunks).toString("utf8"),
        };
        inbox.push(mail);
        waiting.splice(0).forEach((wake) => wake());
        done();
      });
    },
  });
  await new Promise((resolve) => smtp.listen(0, "127.0.0.1", resolve));
  return smtp.server.address().port;
}

// The next message to `address` not taken yet; fails after 10 s.
const taken = new Set();
async function nextMail(address) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const index = inbox.findIndex((m, i) => !taken.has(i) && m.to.includes(address));
    if (index >= 0) {
      taken.add(index);
      return inbox[index];
    }
    const left = deadline - Date.now();
    assert.ok(left > 0, `a mail to ${address} arrives within 10 s (received: ${inbox.length})`);
    await new Promise((resolve) => {
      waiting.push(resolve);
      setTimeout(resolve, Math.min(left, 200));
    });
  }
}

// The body as a mail client shows it (quoted-printable decoded when the message says so).
function bodyOf(raw) {
  const split = raw.indexOf("\r\n\r\n");
  const headers = raw.slice(0, split).toLowerCase();
  let body = raw.slice(split + 4);
  if (headers.includes("content-transfer-encoding: quoted-printable")) {
    body = body
      .replace(/=\r?\n/g, "")
      .replace(/=([0-9A-F]{2})/gi, (_, hex) => String.fromCharCode(parseInt(hex, 16)));
  }
  return body;
}

function subjectOf(raw) {
  return /^Subject: (.*)$/m.exec(raw)?.[1]?.trim();
}

function linkIn(mail) {
  const links = bodyOf(mail.raw)
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => /^https?:\/\//.test(l));
  assert.equal(links.length, 1, `one link in the mail:\n${mail.raw}`);
  return links[0];
}

// ---------------------------------------------------------------------------------------------
// Servers under test
// ---------------------------------------------------------------------------------------------

const servers = [];

async function startServer(name, smtpPort, extraEnv = {}) {
  const bin = resolveBinary();
  const dir = fs.mkdtempSync(path.join(tmpDir, `${name}-`));
  const args = ["serve", "--bind", "127.0.0.1:0", "--database-url", `sqlite://${path.join(dir, "mcpauth.db")}`];
  const env = {
    ...process.env,
    NO_COLOR: "1",
    MCPAUTH_RATE_LIMITS__ENABLED: "false",
    MCPAUTH_SMTP__HOST: "127.0.0.1",
    MCPAUTH_SMTP__PORT: String(smtpPort),
    MCPAUTH_SMTP__TLS: "none",
    MCPAUTH_SMTP__FROM: "mcpauth <no-reply@mcpauth.test>",
    ...extraEnv,
  };
  delete env.MCPAUTH_BIN;
  const child = spawn(bin, args, { cwd: dir, env, stdio: ["ignore", "pipe", "pipe"] });
  const entry = { child, log: "" };
  servers.push(entry);
  child.stderr.setEncoding("utf8");
  child.stdout.setEncoding("utf8");
  child.stderr.on("data", (d) => (entry.log += d));
  const issuer = await new Promise((resolve, reject) => {
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
  assert.match(entry.log, /mail goes out through SMTP/, "the server says where mail goes");
  return issuer;
}

function stopServers() {
  for (const { child } of servers) {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  }
}
process.on("exit", stopServers);

// ---------------------------------------------------------------------------------------------
// Browser helpers
// ---------------------------------------------------------------------------------------------

let browser;

async function newPage(viewport = { width: 1000, height: 800 }) {
  const context = await browser.newContext({ viewport });
  context.setDefaultTimeout(TIMEOUT_MS);
  context.setDefaultNavigationTimeout(TIMEOUT_MS);
  return { context, page: await context.newPage() };
}

async function screenshot(page, name) {
  const file = path.join(screenshotDir, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`# screenshot: ${file}`);
}

// The page as seen on a phone: same URL in a phone-sized viewport, same cookies.
async function phoneScreenshot(context, url, name) {
  const page = await context.newPage();
  await page.setViewportSize(PHONE);
  await page.goto(url);
  await screenshot(page, name);
  await page.close();
}

// Clicks a button and waits for the navigation it causes; returns the final response status.
async function clickAndWait(page, name) {
  const [response] = await Promise.all([
    page.waitForNavigation({ waitUntil: "load" }),
    page.getByRole("button", { name }).click(),
  ]);
  return response?.status();
}

// ---------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------

let smtpPort;

before(async () => {
  smtpPort = await startSmtp();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-sync", "--no-first-run"],
  });
});

after(async () => {
  await browser?.close();
  stopServers();
  await new Promise((resolve) => smtp?.close(resolve));
  if (!process.env.E2E_KEEP_TMP) fs.rmSync(tmpDir, { recursive: true, force: true });
});

test("s30: verify the address, then reset a forgotten password by the mailed link and sign in", async () => {
  const issuer = await startServer("optional", smtpPort);
  const email = `reset-${Date.now()}@example.com`;

  // Sign up (verification optional: signed in at once, a link is mailed).
  const first = await newPage();
  await first.page.goto(`${issuer}/sign-up`);
  await first.page.getByLabel("Name").fill("Robin Reset");
  await first.page.getByLabel("Email").fill(email);
  await first.page.getByLabel("Password").fill(PASSWORD);
  await clickAndWait(first.page, "Create account");
  await first.page.goto(`${issuer}/account`);
  assert.match(await first.page.locator("main").innerText(), /not verified/);
  await screenshot(first.page, "email-01-account-not-verified");

  const verification = await nextMail(email);
  assert.equal(subjectOf(verification.raw), "Verify your email address");
  const verificationLink = linkIn(verification);
  // A mail scanner opening the link first (no cookies, no click) leaves it working.
  const scanner = await newPage();
  await scanner.page.goto(verificationLink);
  assert.match(await scanner.page.locator("h1").innerText(), /Verify your email/);
  await scanner.context.close();
  // The user's click opens a page with one button; the button verifies.
  await phoneScreenshot(first.context, verificationLink, "email-02a-verify-your-email-button-phone");
  await first.page.goto(verificationLink);
  assert.match(await first.page.locator("h1").innerText(), /Verify your email/);
  await screenshot(first.page, "email-02a-verify-your-email-button");
  assert.equal(await clickAndWait(first.page, "Verify my email"), 200);
  assert.equal(new URL(first.page.url()).pathname, "/email-verified");
  assert.match(await first.page.locator("h1").innerText(), /Email verified/);
  await screenshot(first.page, "email-02-email-verified");
  await first.page.goto(`${issuer}/account`);
  assert.match(await first.page.locator(".subtitle").innerText(), /verified/);
  assert.doesNotMatch(await first.page.locator(".subtitle").innerText(), /not verified/);

  // Signed out, in another browser: "Forgot your password?" from the sign-in page.
  const second = await newPage();
  await second.page.goto(`${issuer}/sign-in`);
  await second.page.getByRole("link", { name: "Forgot your password?" }).click();
  assert.equal(new URL(second.page.url()).pathname, "/forgot-password");
  await screenshot(second.page, "email-03-forgot-password");
  await phoneScreenshot(second.context, `${issuer}/forgot-password`, "email-03-forgot-password-phone");
  await second.page.getByLabel("Email").fill(email);
  assert.equal(await clickAndWait(second.page, "Send reset link"), 200);
  assert.match(await second.page.locator("h1").innerText(), /Check your email/);
  await screenshot(second.page, "email-04-check-your-email");

  const reset = await nextMail(email);
  assert.equal(subjectOf(reset.raw), "Reset your password");
  const link = linkIn(reset);
  assert.ok(link.startsWith(`${issuer}/api/auth/reset-password/`), link);
  await second.page.goto(link);
  assert.equal(new URL(second.page.url()).pathname, "/reset-password");
  assert.match(await second.page.locator("h1").innerText(), /Choose a new password/);
  await screenshot(second.page, "email-05-choose-new-password");
  await phoneScreenshot(second.context, second.page.url(), "email-05-choose-new-password-phone");
  await second.page.getByLabel("New password").fill(NEW_PASSWORD);
  assert.equal(await clickAndWait(second.page, "Set new password"), 200);
  assert.match(await second.page.locator("h1").innerText(), /Password changed/);
  await screenshot(second.page, "email-06-password-changed");

  // The first browser's session ended with the reset.
  await first.page.goto(`${issuer}/account`);
  assert.equal(new URL(first.page.url()).pathname, "/sign-in");

  // Sign in with the new password.
  await second.page.getByRole("link", { name: "Sign in" }).click();
  await second.page.getByLabel("Email").fill(email);
  await second.page.getByLabel("Password").fill(NEW_PASSWORD);
  await clickAndWait(second.page, "Sign in");
  assert.equal(new URL(second.page.url()).pathname, "/");
  assert.match(await second.page.locator("main").innerText(), new RegExp(email.replace(/[.@]/g, "\\$&")));

  // The used link: the expired-link page.
  const third = await newPage();
  const response = await third.page.goto(link);
  assert.equal(response.status(), 400);
  assert.match(await third.page.locator("h1").innerText(), /expired/);
  await screenshot(third.page, "email-07-reset-link-expired");

  for (const { context } of [first, second, third]) await context.close();
});

test("s30: with verification required, sign-in waits for the link and offers to resend it", async () => {
  const issuer = await startServer("required", smtpPort, { MCPAUTH_EMAIL_VERIFICATION: "required" });
  const email = `verify-${Date.now()}@example.com`;
  const { context, page } = await newPage();
  await page.goto(`${issuer}/sign-up`);
  await page.getByLabel("Name").fill("Vera Verify");
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(PASSWORD);
  await clickAndWait(page, "Create account");
  assert.match(await page.locator("h1").innerText(), /Check your email/);
  await screenshot(page, "email-08-sign-up-check-your-email");
  await nextMail(email);

  await page.goto(`${issuer}/sign-in`);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(PASSWORD);
  assert.equal(await clickAndWait(page, "Sign in"), 403);
  assert.match(await page.locator("h1").innerText(), /Verify your email first/);
  await screenshot(page, "email-09-verify-your-email-first");
  assert.equal(await clickAndWait(page, "Send the link again"), 200);
  const again = await nextMail(email);

  await page.goto(linkIn(again));
  assert.equal(await clickAndWait(page, "Verify my email"), 200);
  assert.match(await page.locator("h1").innerText(), /Email verified/);
  // Followed twice: the expired page, with a form to ask for a new link.
  await page.goto(linkIn(again));
  assert.match(await page.locator("h1").innerText(), /expired/);
  await screenshot(page, "email-10-verification-link-expired");

  await page.goto(`${issuer}/sign-in`);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(PASSWORD);
  await clickAndWait(page, "Sign in");
  assert.equal(new URL(page.url()).pathname, "/");
  await context.close();
});
