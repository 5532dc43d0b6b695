// Interop: machine and enterprise clients (issue 21, SECURITY E1–E3) driven by panva's
// `openid-client` (pinned in package.json) against a live `mcpauth serve`, with ID-JAGs minted by
// a separate enterprise issuer built here with `jose` (pinned): its own ES256 key, its JWKS served
// over HTTP on loopback.
//
//   client_credentials with client_secret_basic (openid-client's clientCredentialsGrant): a token
//     without a user (get-session: userId null), no refresh token; an over-asked scope → refused
//     with invalid_scope (mcpauth's documented rule for machines)
//   client_credentials with private_key_jwt (openid-client's PrivateKeyJwt signs the assertion)
//   ID-JAG redemption (genericGrantRequest with urn:ietf:params:oauth:grant-type:jwt-bearer) →
//     a user's token without a consent page; then the refusals, each invalid_grant: wrong aud,
//     wrong typ, replayed jti, expired, client_id mismatch, unknown issuer; an over-asked scope is
//     narrowed (mcpauth's documented rule for ID-JAGs), not refused
//
//   npm ci && node --test machine-clients.test.mjs   # after `cargo build -p mcpauth-server`
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import dns from "node:dns";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import crypto from "node:crypto";
import * as oidc from "openid-client";
import * as jose from "jose";
import { startServer } from "../ts/lib/server.mjs";

dns.setDefaultResultOrder("ipv4first");

const MACHINE = "nightly-ci";
const MACHINE_SECRET = "a-machine-secret-that-is-long-enough-1234";
const KEYED = "keyed-agent";
const AGENT = "enterprise-agent";
const AGENT_SECRET = "an-enterprise-agent-secret-long-enough-99";
const JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const EXECUTE = [oidc.allowInsecureRequests];

const ctx = {};

/** The OAuth error of a refused grant, as openid-client reports it. */
async function refusal(promise) {
  try {
    await promise;
  } catch (e) {
    return { error: e.error ?? e.cause?.error, description: e.error_description ?? e.cause?.error_description ?? "" };
  }
  assert.fail("the request was accepted");
}

/** An enterprise identity provider: its own key, its JWKS served on loopback. */
async function startIdp() {
  const { privateKey, publicKey } = await jose.generateKeyPair("ES256", { extractable: true });
  const jwk = { ...(await jose.exportJWK(publicKey)), kid: "idp-1", alg: "ES256", use: "sig" };
  const server = http.createServer((req, res) => {
    if (req.url === "/jwks") {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ keys: [jwk] }));
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const base = `http://127.0.0.1:${server.address().port}`;
  return { issuer: `${base}/oauth2/default`, jwksUri: `${base}/jwks`, privateKey, server };
}

/** An ID-JAG for `email`, made out to `audience`, with `change` applied to claims and header. */
async function idJag(idp, audience, resource, change = () => {}) {
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    iss: idp.issuer,
    sub: "00u-ada",
    aud: audience,
    client_id: AGENT,
    jti: crypto.randomUUID(),
    iat: now,
    exp: now + 120,
    resource,
    scope: "mcp:tools",
    email: "ada@acme.example",
    email_verified: true,
  };
  const header = { alg: "ES256", typ: "oauth-id-jag+jwt", kid: "idp-1" };
  change(claims, header);
  return new jose.SignJWT(claims).setProtectedHeader(header).sign(idp.privateKey);
}

function toml(idp, keyedJwk) {
  const jwk = Object.entries(keyedJwk)
    .map(([k, v]) => `${k} = ${JSON.stringify(v)}`)
    .join(", ");
  return `
[client_credentials]
enabled = true

[[trusted_clients]]
client_id = "${MACHINE}"
client_secret = "${MACHINE_SECRET}"
name = "Nightly CI"
grant_types = ["client_credentials"]
scope = "mcp:tools"

[[trusted_clients]]
client_id = "${KEYED}"
token_endpoint_auth_method = "private_key_jwt"
name = "Keyed agent"
grant_types = ["client_credentials"]
scope = "mcp:tools"
jwks = { keys = [ { ${jwk} } ] }

[[trusted_clients]]
client_id = "${AGENT}"
client_secret = "${AGENT_SECRET}"
name = "Enterprise agent"
redirect_uris = ["https://agent.example.test/callback"]

[[trusted_issuers]]
id = "acme-okta"
issuer = "${idp.issuer}"
jwks_uri = "${idp.jwksUri}"
client_ids = ["${AGENT}"]
subject = "email"
create_users = true
scopes = ["mcp:tools"]
`;
}

before(async () => {
  ctx.idp = await startIdp();
  const { privateKey, publicKey } = await jose.generateKeyPair("ES256", { extractable: true });
  ctx.keyedKey = privateKey;
  const keyedJwk = { ...(await jose.exportJWK(publicKey)), kid: "agent-1" };
  ctx.configDir = fs.mkdtempSync(path.join(process.env.TMPDIR ?? "/tmp", "mcpauth-machines-"));
  const config = path.join(ctx.configDir, "mcpauth.toml");
  fs.writeFileSync(config, toml(ctx.idp, keyedJwk));
  ctx.server = await startServer({ name: "interop-machines", args: ["--config", config] });
});

after(async () => {
  await ctx.server?.stop();
  ctx.idp?.server.close();
  if (ctx.configDir) fs.rmSync(ctx.configDir, { recursive: true, force: true });
});

async function session(accessToken) {
  const res = await fetch(`${ctx.server.issuer}/api/auth/mcp/get-session`, {
    headers: { authorization: `Bearer ${accessToken}` },
  });
  return { status: res.status, body: await res.json() };
}

test("metadata lists client_credentials, the jwt-bearer grant and private_key_jwt", async () => {
  const config = await oidc.discovery(new URL(ctx.server.issuer), MACHINE, undefined, oidc.ClientSecretBasic(MACHINE_SECRET), {
    execute: EXECUTE,
  });
  const metadata = config.serverMetadata();
  assert.ok(metadata.grant_types_supported.includes("client_credentials"));
  assert.ok(metadata.grant_types_supported.includes(JWT_BEARER));
  assert.ok(metadata.token_endpoint_auth_methods_supported.includes("private_key_jwt"));
  assert.ok(metadata.token_endpoint_auth_signing_alg_values_supported.includes("ES256"));
});

test("client_credentials with a client secret: a machine's token, no user, no refresh token", async () => {
  const config = await oidc.discovery(new URL(ctx.server.issuer), MACHINE, undefined, oidc.ClientSecretBasic(MACHINE_SECRET), {
    execute: EXECUTE,
  });
  const tokens = await oidc.clientCredentialsGrant(config, { scope: "mcp:tools", resource: ctx.server.mcpUrl });
  assert.equal(tokens.token_type.toLowerCase(), "bearer");
  assert.equal(tokens.scope, "mcp:tools");
  assert.equal(tokens.refresh_token, undefined);
  const me = await session(tokens.access_token);
  assert.equal(me.status, 200);
  assert.equal(me.body.userId, null);
  assert.equal(me.body.clientId, MACHINE);

  const over = await refusal(oidc.clientCredentialsGrant(config, { scope: "mcp:tools mcp:admin" }));
  assert.equal(over.error, "invalid_scope");
  assert.match(over.description, /mcp:admin/);
});

test("client_credentials with private_key_jwt (openid-client signs the assertion)", async () => {
  const config = await oidc.discovery(new URL(ctx.server.issuer), KEYED, undefined, oidc.PrivateKeyJwt({ key: ctx.keyedKey, kid: "agent-1" }), {
    execute: EXECUTE,
  });
  const tokens = await oidc.clientCredentialsGrant(config, { scope: "mcp:tools" });
  assert.equal(tokens.scope, "mcp:tools");
  const me = await session(tokens.access_token);
  assert.equal(me.body.clientId, KEYED);
  assert.equal(me.body.userId, null);
  // A second grant signs a new assertion (new jti): accepted as well.
  await oidc.clientCredentialsGrant(config, { scope: "mcp:tools" });
});

test("ID-JAG redemption, then every refusal", async () => {
  const { issuer, mcpUrl } = ctx.server;
  const config = await oidc.discovery(new URL(issuer), AGENT, undefined, oidc.ClientSecretBasic(AGENT_SECRET), {
    execute: EXECUTE,
  });
  const redeem = async (assertion) => oidc.genericGrantRequest(config, JWT_BEARER, { assertion });

  const good = await idJag(ctx.idp, issuer, mcpUrl);
  const tokens = await redeem(good);
  assert.equal(tokens.scope, "mcp:tools");
  assert.equal(tokens.refresh_token, undefined);
  const me = await session(tokens.access_token);
  assert.equal(me.status, 200);
  assert.equal(typeof me.body.userId, "string", "a user's token");
  assert.equal(me.body.audience, mcpUrl);

  // A scope beyond what the issuer may grant is narrowed, not refused.
  const narrowed = await redeem(await idJag(ctx.idp, issuer, mcpUrl, (c) => (c.scope = "mcp:tools mcp:admin payroll")));
  assert.equal(narrowed.scope, "mcp:tools");

  const now = Math.floor(Date.now() / 1000);
  const stranger = await jose.generateKeyPair("ES256");
  const cases = [
    ["replayed jti", good, /used before/],
    ["wrong aud", await idJag(ctx.idp, issuer, mcpUrl, (c) => (c.aud = "https://other-as.example")), /aud/],
    ["wrong typ", await idJag(ctx.idp, issuer, mcpUrl, (_, h) => (h.typ = "JWT")), /typ/],
    ["expired", await idJag(ctx.idp, issuer, mcpUrl, (c) => ((c.exp = now - 120), (c.iat = now - 300))), /expired/],
    ["client_id mismatch", await idJag(ctx.idp, issuer, mcpUrl, (c) => (c.client_id = "someone-else")), /client_id/],
    ["unknown issuer", await idJag(ctx.idp, issuer, mcpUrl, (c) => (c.iss = "https://unknown-idp.example")), /not trusted/],
    [
      "foreign key",
      await new jose.SignJWT({ iss: ctx.idp.issuer, sub: "x", aud: issuer, client_id: AGENT, jti: crypto.randomUUID(), iat: now, exp: now + 60 })
        .setProtectedHeader({ alg: "ES256", typ: "oauth-id-jag+jwt", kid: "idp-1" })
        .sign(stranger.privateKey),
      /signature/,
    ],
  ];
  for (const [name, assertion, why] of cases) {
    const refused = await refusal(redeem(assertion));
    assert.equal(refused.error, "invalid_grant", name);
    assert.match(refused.description, why, name);
  }
});
