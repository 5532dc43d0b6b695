#!/usr/bin/env node
// Benchmark fixtures, the same steps against mcpauth and the Better Auth peer (Node built-ins only):
// sign up a user (session cookie), register a public client, authorize with PKCE S256 (accepting
// the consent step if the server asks for one: mcpauth does the first time, then remembers it),
// and exchange CHAINS+1 codes: the first access token is the one the validation and MCP
// scenarios use, the CHAINS refresh tokens start the refresh-grant chains.
//
//   node prep.mjs --base http://127.0.0.1:PORT --origin ORIGIN --out prep.json [--chains 16]
//                 [--scope "openid profile email offline_access"] [--prefix /api/auth]
//                 [--resource URL]   (RFC 8707: tokens for that protected resource, e.g. a gateway upstream)
//
// ORIGIN is the server's own origin (its issuer), sent as `Origin` on cookie-bearing POSTs.
// Every code uses the same PKCE pair (written to prep.json for the code-minting phase).
import fs from "node:fs";
import http from "node:http";
import crypto from "node:crypto";

const argv = process.argv.slice(2);
const arg = (k, d) => {
  const i = argv.indexOf(`--${k}`);
  return i >= 0 ? argv[i + 1] : d;
};
const BASE = arg("base").replace(/\/+$/, "");
const ORIGIN = arg("origin", BASE).replace(/\/+$/, "");
const PREFIX = arg("prefix", "/api/auth").replace(/\/+$/, "");
const OUT = arg("out", "prep.json");
const CHAINS = Number(arg("chains", 16));
const SCOPE = arg("scope", "openid profile email offline_access");
const REDIRECT_URI = arg("redirect-uri", "http://localhost:9999/callback");
const RESOURCE = arg("resource");
const withResource = (params) => (RESOURCE ? { ...params, resource: RESOURCE } : params);

const host = new URL(BASE).hostname;
if (!/^(127\.\d+\.\d+\.\d+|localhost|\[::1\])$/.test(host)) {
  console.error(`prep: refusing non-loopback base ${BASE}`);
  process.exit(2);
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
function request(method, path, { headers = {}, body } = {}) {
  const u = new URL(BASE);
  return new Promise((resolve, reject) => {
    const h = { ...headers };
    if (body !== undefined) h["content-length"] = Buffer.byteLength(body);
    const r = http.request({ host: u.hostname, port: u.port, method, path, headers: h, agent }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    r.setTimeout(30_000, () => r.destroy(new Error(`timeout: ${method} ${path}`)));
    r.on("error", reject);
    if (body !== undefined) r.write(body);
    r.end();
  });
}
function die(msg, r) {
  console.error(`prep: ${msg}: ${r?.status} ${r?.body?.slice(0, 300)}`);
  process.exit(1);
}
const cookiesOf = (r) =>
  (Array.isArray(r.headers["set-cookie"]) ? r.headers["set-cookie"] : [r.headers["set-cookie"]])
    .filter(Boolean)
    .map((c) => c.split(";")[0]);

const b64url = (buf) => Buffer.from(buf).toString("base64url");
const verifier = b64url(crypto.randomBytes(32));
const challenge = b64url(crypto.createHash("sha256").update(verifier).digest());

// 1. user + session cookie
const email = `bench-${Date.now()}-${crypto.randomBytes(4).toString("hex")}@example.com`;
const su = await request("POST", `${PREFIX}/sign-up/email`, {
  headers: { "content-type": "application/json", origin: ORIGIN },
  body: JSON.stringify({ email, password: "bench-Passw0rd!-long", name: "Bench User" }),
});
if (su.status !== 200) die("sign-up failed", su);
const cookie = cookiesOf(su).join("; ");
if (!cookie) die("sign-up set no cookie", su);

// 2. public client
const reg = await request("POST", `${PREFIX}/mcp/register`, {
  headers: { "content-type": "application/json" },
  body: JSON.stringify({
    client_name: "bench",
    redirect_uris: [REDIRECT_URI],
    token_endpoint_auth_method: "none",
    grant_types: ["authorization_code", "refresh_token"],
    response_types: ["code"],
  }),
});
if (reg.status !== 201 && reg.status !== 200) die("register failed", reg);
const clientId = JSON.parse(reg.body).client_id;

const authorizeQuery = new URLSearchParams(withResource({
  response_type: "code", client_id: clientId, redirect_uri: REDIRECT_URI, scope: SCOPE,
  state: "bench", code_challenge: challenge, code_challenge_method: "S256",
})).toString();
const authorizePath = `${PREFIX}/mcp/authorize?${authorizeQuery}`;

async function code() {
  const az = await request("GET", authorizePath, { headers: { cookie } });
  if (az.status !== 302 || !az.headers.location) die("authorize failed", az);
  let loc = new URL(az.headers.location, BASE);
  const consentCode = loc.searchParams.get("consent_code");
  if (consentCode) {
    const c = await request("POST", `${PREFIX}/oauth2/consent`, {
      headers: { "content-type": "application/json", origin: ORIGIN, cookie },
      body: JSON.stringify({ accept: true, consent_code: consentCode }),
    });
    if (c.status !== 200) die("consent failed", c);
    const j = JSON.parse(c.body);
    loc = new URL(j.redirectURI || j.redirect_uri || j.url, BASE);
  }
  const value = loc.searchParams.get("code");
  if (!value) die(`authorize did not reach the redirect URI (${loc})`, az);
  return value;
}
async function exchange(value) {
  const tok = await request("POST", `${PREFIX}/mcp/token`, {
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(withResource({
      grant_type: "authorization_code", code: value, redirect_uri: REDIRECT_URI,
      client_id: clientId, code_verifier: verifier,
    })).toString(),
  });
  if (tok.status !== 200) die("token failed", tok);
  const t = JSON.parse(tok.body);
  if (!t.access_token || !t.refresh_token) die("token response lacks access_token or refresh_token", tok);
  return t;
}

// 3. tokens: one for validation, CHAINS refresh tokens
const first = await exchange(await code());
const refreshTokens = [];
for (let i = 0; i < CHAINS; i++) refreshTokens.push((await exchange(await code())).refresh_token);

// a sanity check of the bearer on the server's session endpoint is left to the caller
fs.writeFileSync(
  OUT,
  JSON.stringify(
    {
      base: BASE, origin: ORIGIN, prefix: PREFIX, redirectUri: REDIRECT_URI, scope: SCOPE, email, cookie,
      clientId, verifier, challenge, authorizePath, accessToken: first.access_token,
      refreshTokens,
      exchangeTemplate: new URLSearchParams({
        grant_type: "authorization_code", code: "CODE", redirect_uri: REDIRECT_URI, client_id: clientId, code_verifier: verifier,
      }).toString().replace("CODE", "{}"),
      refreshTemplate: new URLSearchParams({ grant_type: "refresh_token", refresh_token: "TOK", client_id: clientId })
        .toString().replace("TOK", "{}"),
    },
    null,
    2,
  ),
);
console.error(`prep: ok ${BASE} client=${clientId} token=${first.access_token.length} chars, ${refreshTokens.length} refresh chains`);
process.exit(0);
