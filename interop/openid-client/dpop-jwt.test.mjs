// Interop for SECURITY T1–T3 with libraries nobody here wrote, against a live `mcpauth serve`
// whose main resource issues JWT access tokens (MCPAUTH_ACCESS_TOKEN_FORMAT=jwt):
//  - panva's openid-client 6 (its oauth4webapi implements DPoP, RFC 9449) registers a public
//    client with `dpop_bound_access_tokens: true`, runs the code flow with a DPoP key, calls the
//    MCP endpoint with the bound token (`fetchProtectedResource`), and refreshes with the key;
//  - the README's verification snippets, `jose` (snippets/verify-access-token.mjs) and PyJWT
//    (snippets/verify_access_token.py, run with $PYTHON: the interop/python venv), verify the
//    JWT and refuse an id_token and a token for another resource;
//  - the refusals, with proofs made by `jose`: a bound token as Bearer, a replayed proof, wrong
//    htu and htm, a stale iat, another key, a symmetric alg, a private key inside jwk; a refresh
//    with another key (invalid_grant, the grant intact for the right key);
//  - a server with MCPAUTH_USE_DPOP_NONCE=true: openid-client follows the use_dpop_nonce answer.
//
//   npm ci && PYTHON=<venv>/bin/python node --test dpop-jwt.test.mjs   # after `cargo build -p mcpauth-server`
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import dns from "node:dns";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import * as oidc from "openid-client";
import * as jose from "jose";
import { startServer, signUp } from "../ts/lib/server.mjs";
import { authorizeHeadlessly } from "../ts/lib/headless-ua.mjs";
import { accessTokenVerifier } from "./snippets/verify-access-token.mjs";

dns.setDefaultResultOrder("ipv4first");

const HERE = path.dirname(fileURLToPath(import.meta.url));
const USER = { email: "dpop@example.com", password: "correct horse battery staple", name: "Grace Hopper" };
const REDIRECT_URI = "http://127.0.0.1:53682/callback";
const PYTHON = process.env.PYTHON ?? "python3";
const INITIALIZE = JSON.stringify({
  jsonrpc: "2.0", id: 1, method: "initialize",
  params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "dpop-interop", version: "1" } },
});
const MCP_HEADERS = { "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-protocol-version": "2025-06-18" };
const options = () => ({ execute: [oidc.allowInsecureRequests] });

/** Registers a public DPoP client, signs in with a fresh DPoP key; the client, its key and tokens. */
async function dpopClient(server, keyPair) {
  const config = await oidc.dynamicClientRegistration(
    new URL(server.issuer),
    {
      client_name: "DPoP interop", redirect_uris: [REDIRECT_URI], grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"], token_endpoint_auth_method: "none", application_type: "native",
      dpop_bound_access_tokens: true,
    },
    oidc.None(),
    options(),
  );
  keyPair ??= await oidc.randomDPoPKeyPair("ES256");
  const DPoP = oidc.getDPoPHandle(config, keyPair);
  const pkceCodeVerifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT_URI, scope: "openid mcp:tools", state,
    code_challenge: await oidc.calculatePKCECodeChallenge(pkceCodeVerifier), code_challenge_method: "S256",
  });
  const cb = await authorizeHeadlessly(url.href, { redirectUri: REDIRECT_URI, email: USER.email, password: USER.password });
  const tokens = await oidc.authorizationCodeGrant(config, new URL(cb.callbackUrl), { pkceCodeVerifier, expectedState: state }, undefined, { DPoP });
  return { config, keyPair, DPoP, tokens };
}

/** A DPoP proof made with `jose` (RFC 9449 §4.2), for hand-made refusals. */
async function proof({ key, jwk, alg = "ES256", htm = "POST", htu, iat = Math.floor(Date.now() / 1000), ath }) {
  const claims = { jti: crypto.randomUUID(), htm, htu, iat };
  if (ath) claims.ath = jose.base64url.encode(new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(ath))));
  return new jose.SignJWT(claims).setProtectedHeader({ typ: "dpop+jwt", alg, jwk }).sign(key);
}

async function mcp(server, authorization, dpop) {
  const headers = { ...MCP_HEADERS, authorization };
  if (dpop) headers.dpop = dpop;
  return fetch(server.mcpUrl, { method: "POST", headers, body: INITIALIZE });
}

function python(server, token) {
  const run = spawnSync(PYTHON, [path.join(HERE, "snippets", "verify_access_token.py"), server.issuer, server.mcpUrl, token], { encoding: "utf8" });
  return { ok: run.status === 0, out: `${run.stdout}${run.stderr}` };
}

let server;
before(async () => {
  server = await startServer({ name: "dpop-jwt", env: { MCPAUTH_ACCESS_TOKEN_FORMAT: "jwt" } });
  await signUp(server.issuer, USER);
});
after(async () => server?.stop());

test("openid-client: the code flow with DPoP gives a bound RFC 9068 JWT that works at the MCP endpoint (T1, T2)", async () => {
  const { config, keyPair, DPoP, tokens } = await dpopClient(server);
  assert.equal(tokens.token_type.toLowerCase(), "dpop");
  const header = jose.decodeProtectedHeader(tokens.access_token);
  assert.equal(header.typ, "at+jwt");

  // The README's snippets verify it; the key it is bound to is the client's.
  const payload = await accessTokenVerifier(server.issuer, server.mcpUrl)(tokens.access_token);
  assert.equal(payload.client_id, config.clientMetadata().client_id);
  assert.equal(payload.cnf.jkt, await jose.calculateJwkThumbprint(await jose.exportJWK(keyPair.publicKey)));
  const py = python(server, tokens.access_token);
  assert.ok(py.ok, py.out);
  assert.equal(JSON.parse(py.out).cnf.jkt, payload.cnf.jkt);

  // The MCP endpoint, through the library's DPoP request.
  const response = await oidc.fetchProtectedResource(config, tokens.access_token, new URL(server.mcpUrl), "POST", INITIALIZE, new Headers(MCP_HEADERS), { DPoP });
  assert.equal(response.status, 200, await response.clone().text());
});

test("the snippets refuse an id_token, a token for another resource and alg none (T1)", async () => {
  const { tokens } = await dpopClient(server);
  const verify = accessTokenVerifier(server.issuer, server.mcpUrl);
  await assert.rejects(verify(tokens.id_token), /typ|unexpected/i, "an id_token is no access token");
  const elsewhere = accessTokenVerifier(server.issuer, `${server.issuer}/mcp/other`);
  await assert.rejects(elsewhere(tokens.access_token), /aud/, "another resource's verifier refuses it");
  const [, body] = tokens.access_token.split(".");
  const none = `${jose.base64url.encode(JSON.stringify({ alg: "none", typ: "at+jwt" }))}.${body}.`;
  await assert.rejects(verify(none));
  for (const token of [tokens.id_token, none]) assert.ok(!python(server, token).ok, "PyJWT refuses it too");
  const py = spawnSync(PYTHON, [path.join(HERE, "snippets", "verify_access_token.py"), server.issuer, `${server.issuer}/mcp/other`, tokens.access_token], { encoding: "utf8" });
  assert.notEqual(py.status, 0, "PyJWT refuses another resource's token");
});

test("refusals at the MCP endpoint: stolen bound token, replayed proof, wrong htu/htm, stale iat, other key, symmetric alg, private jwk (T2)", async () => {
  // An extractable key, so that a proof can carry its private half (the last case).
  const { keyPair, tokens } = await dpopClient(server, await jose.generateKeyPair("ES256", { extractable: true }));
  const token = tokens.access_token;
  const jwk = await jose.exportJWK(keyPair.publicKey);
  const good = (extra = {}) => proof({ key: keyPair.privateKey, jwk, htu: server.mcpUrl, ath: token, ...extra });

  const asBearer = await mcp(server, `Bearer ${token}`);
  assert.equal(asBearer.status, 401, "a bound token as Bearer");
  assert.match(asBearer.headers.get("www-authenticate"), /DPoP algs="[^"]*ES256/);

  const once = await good();
  assert.equal((await mcp(server, `DPoP ${token}`, once)).status, 200, "a good proof");
  const other = await jose.generateKeyPair("ES256", { extractable: true });
  const cases = {
    "replayed proof": once,
    "wrong htu": await good({ htu: `${server.issuer}/api/elsewhere` }),
    "wrong htm": await good({ htm: "GET" }),
    "stale iat": await good({ iat: Math.floor(Date.now() / 1000) - 600 }),
    "another key": await proof({ key: other.privateKey, jwk: await jose.exportJWK(other.publicKey), htu: server.mcpUrl, ath: token }),
    "symmetric alg": await proof({ key: new TextEncoder().encode("a shared secret of 32 bytes!!!!!"), alg: "HS256", jwk: { kty: "oct", k: "c2VjcmV0" }, htu: server.mcpUrl, ath: token }),
    "private key in jwk": await good({ jwk: await jose.exportJWK(keyPair.privateKey) }),
    "no proof": undefined,
  };
  for (const [what, dpop] of Object.entries(cases)) {
    const response = await mcp(server, `DPoP ${token}`, dpop);
    assert.equal(response.status, 401, what);
    assert.match(response.headers.get("www-authenticate"), /DPoP .*error="invalid_dpop_proof"/, what);
  }
});

test("a bound refresh token refreshes only with its key; the grant survives the attempt (T3)", async () => {
  const { config, DPoP, tokens } = await dpopClient(server);
  const thief = oidc.getDPoPHandle(config, await oidc.randomDPoPKeyPair("ES256"));
  await assert.rejects(oidc.refreshTokenGrant(config, tokens.refresh_token, undefined, { DPoP: thief }), (e) => e.error === "invalid_grant");
  await assert.rejects(oidc.refreshTokenGrant(config, tokens.refresh_token), (e) => /invalid_grant|invalid_dpop_proof/.test(`${e.error} ${e.cause?.error}`));
  const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token, undefined, { DPoP });
  assert.equal(refreshed.token_type.toLowerCase(), "dpop");
  const response = await oidc.fetchProtectedResource(config, refreshed.access_token, new URL(server.mcpUrl), "POST", INITIALIZE, new Headers(MCP_HEADERS), { DPoP });
  assert.equal(response.status, 200);
});

test("server nonces: openid-client follows use_dpop_nonce at the token endpoint and the resource", async () => {
  const nonced = await startServer({ name: "dpop-nonce", env: { MCPAUTH_USE_DPOP_NONCE: "true" } });
  try {
    await signUp(nonced.issuer, USER);
    let attempt;
    for (let i = 0; i < 2; i += 1) {
      try {
        attempt = await dpopClient(nonced);
        break;
      } catch (e) {
        // The first token request learns the nonce (use_dpop_nonce); the library keeps it.
        if (!oidc.isDPoPNonceError?.(e) && e?.error !== "use_dpop_nonce") throw e;
      }
    }
    assert.ok(attempt, "the flow completed with a nonce");
    const { config, DPoP, tokens } = attempt;
    let response = await oidc.fetchProtectedResource(config, tokens.access_token, new URL(nonced.mcpUrl), "POST", INITIALIZE, new Headers(MCP_HEADERS), { DPoP });
    if (response.status === 401) {
      assert.match(response.headers.get("www-authenticate"), /use_dpop_nonce/);
      response = await oidc.fetchProtectedResource(config, tokens.access_token, new URL(nonced.mcpUrl), "POST", INITIALIZE, new Headers(MCP_HEADERS), { DPoP });
    }
    assert.equal(response.status, 200);
  } finally {
    await nonced.stop();
  }
});
