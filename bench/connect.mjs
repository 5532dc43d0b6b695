#!/usr/bin/env node
// Benchmark fixture for the gateway_credential scenario (Node built-ins only): plays a minimal
// OAuth 2.0 provider on loopback (authorization code at once, tokens that live a day, so that no
// refresh happens while measuring) and connects the prep user's account to it through mcpauth's
// real connect flow: the gateway's tool error carries the connect link (the bench client declares
// no URL elicitation), the signed-in session cookie opens it, the form is posted, the provider's
// redirect comes back to mcpauth's callback. Exits once connected (the provider is not needed
// afterwards).
//
//   node connect.mjs --prep prep.json --mcp URL --provider-port PORT
//
// prep.json is bench/prep.mjs's output for the same server (its cookie and access token); URL is
// the MCP endpoint of the upstream with the credential.
import fs from "node:fs";
import http from "node:http";

const argv = process.argv.slice(2);
const arg = (k, d) => {
  const i = argv.indexOf(`--${k}`);
  return i >= 0 ? argv[i + 1] : d;
};
const prep = JSON.parse(fs.readFileSync(arg("prep"), "utf8"));
const mcpUrl = arg("mcp");
const providerPort = Number(arg("provider-port"));
const die = (msg) => {
  console.error(`connect: ${msg}`);
  process.exit(1);
};
for (const url of [prep.base, mcpUrl]) {
  if (!/^http:\/\/(127\.\d+\.\d+\.\d+|localhost)(:\d+)?\//.test(`${url}/`)) die(`refusing non-loopback ${url}`);
}

// The provider: /authorize sends the browser straight back with a code; /token answers tokens.
let issued = 0;
const provider = http.createServer((req, res) => {
  const url = new URL(req.url, "http://127.0.0.1");
  if (url.pathname === "/authorize") {
    const back = new URL(url.searchParams.get("redirect_uri"));
    back.searchParams.set("code", "bench-code");
    back.searchParams.set("state", url.searchParams.get("state"));
    res.writeHead(302, { location: back.href }).end();
  } else if (url.pathname === "/token" && req.method === "POST") {
    issued += 1;
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({
      access_token: `bench-service-token-${issued}-${"x".repeat(24)}`,
      refresh_token: `bench-service-refresh-${issued}`,
      token_type: "Bearer",
      expires_in: 86400,
    }));
  } else {
    res.writeHead(404).end();
  }
});
await new Promise((resolve) => provider.listen(providerPort, "127.0.0.1", resolve));

const cookies = new Map(prep.cookie.split("; ").map((c) => [c.split("=")[0], c.slice(c.indexOf("=") + 1)]));
const cookieHeader = () => [...cookies].map(([k, v]) => `${k}=${v}`).join("; ");
async function browse(url, init = {}) {
  const res = await fetch(url, { ...init, redirect: "manual", headers: { ...init.headers, cookie: cookieHeader() } });
  for (const c of res.headers.getSetCookie()) {
    const pair = c.split(";")[0];
    cookies.set(pair.split("=")[0], pair.slice(pair.indexOf("=") + 1));
  }
  return res;
}

// 1. The call that needs the connection: a tool error carrying the link.
const call = await fetch(mcpUrl, {
  method: "POST",
  headers: {
    authorization: `Bearer ${prep.accessToken}`,
    "content-type": "application/json",
    accept: "application/json, text/event-stream",
    "mcp-protocol-version": "2025-06-18",
  },
  body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "echo", arguments: { message: "hi" } } }),
});
const answer = await call.json();
const text = answer?.result?.content?.[0]?.text ?? "";
const link = text.match(/(http:\/\/\S+\/connections\/\S+\/connect\?\S+)/)?.[1];
if (!answer?.result?.isError || !link) die(`no connect link in ${JSON.stringify(answer)}`);

// 2. The connect page, its form, the provider, the callback.
const page = await browse(link);
const html = await page.text();
if (page.status !== 200) die(`connect page ${page.status}: ${html.slice(0, 300)}`);
const field = (name) => html.match(new RegExp(`name="${name}" value="([^"]*)"`))?.[1];
const action = html.match(/<form method="post" action="([^"]+)"/)?.[1]?.replace(/&#x2f;|&#47;/gi, "/");
if (!action || !field("csrf_token")) die(`no connect form: ${html.slice(0, 300)}`);
const posted = await browse(new URL(action, prep.base).href, {
  method: "POST",
  headers: { "content-type": "application/x-www-form-urlencoded", origin: prep.origin },
  body: new URLSearchParams({ csrf_token: field("csrf_token"), ticket: field("ticket") ?? "" }).toString(),
});
let next = posted.headers.get("location");
if (posted.status !== 303 || !next) die(`connect form answered ${posted.status}`);
for (let hop = 0; hop < 4 && next; hop++) {
  const res = await browse(new URL(next, prep.base).href);
  if (res.status >= 300 && res.status < 400) {
    next = res.headers.get("location");
    continue;
  }
  const done = await res.text();
  if (res.status !== 200 || !/return to your client/.test(done)) die(`callback answered ${res.status}: ${done.slice(0, 300)}`);
  provider.close();
  console.error(`connect: connected (${issued} token answer(s) from the provider)`);
  process.exit(0);
}
die("the connect flow did not end at mcpauth's callback page");
