// Interop: a strict OpenID Connect relying party, panva's `openid-client` (pinned in package.json),
// against a live `mcpauth serve`. Nothing is checked by hand that the library checks itself: it
// does discovery (with its issuer check), dynamic registration, the authorization URL, and the
// code grant, where it verifies the RFC 9207 `iss` and `state` of the callback, sends the PKCE
// verifier, and validates the id_token (signature against `jwks_uri` — see EXECUTE below —, `iss`,
// `aud`, `exp`, `iat`, `nonce`, the signing algorithm against the metadata); then userinfo (with
// its `sub` check), refresh and revocation. The browser step is `lib/headless-ua.mjs` (mcpauth's
// real sign-in and consent forms, no browser; it stops at the redirect to redirect_uri, nothing
// listens there). Negative probes show the checks are live: a callback with a forged or missing
// `iss` or a wrong `state`, and a token response whose id_token signature was altered, are refused.
//
//   ES256 server (default signing algorithm), refresh_reuse_grace = 0, refresh_reuse_policy = strict:
//     discovery -> for a confidential client (client_secret_basic) and a public client (none):
//     registration -> code + PKCE S256 + state + nonce -> userinfo -> refresh (rotation; the old
//     refresh token is then refused) -> a second grant -> revocation (the grant is dead)
//   RS256 server (MCPAUTH_SIGNING_ALGORITHM=RS256), default settings:
//     registration -> code flow (RS256 id_token verified) -> userinfo -> refresh, and a retry of
//     the rotated token within refresh_reuse_grace (same answer) -> revocation
//
//   npm ci && node --test    # from this folder, after `cargo build -p mcpauth-server`
//
// Environment: MCPAUTH_BIN (default <repo>/target/debug/mcpauth); INTEROP_VERBOSE=1 prints the
// flow; INTEROP_TRAFFIC_DIR=dir writes what the library sent and got (secrets shortened) to
// dir/openid-client-{es256,rs256}.json; INTEROP_KEEP_TMP=1 keeps the servers' temp dirs.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import dns from "node:dns";
import fs from "node:fs";
import path from "node:path";
import * as oidc from "openid-client";
import { startServer, signUp } from "../ts/lib/server.mjs";
import { authorizeHeadlessly } from "../ts/lib/headless-ua.mjs";
import { createRecorder } from "./lib/recorder.mjs";

// The server listens on 127.0.0.1 while the issuer says `localhost`: resolve it to IPv4 first.
dns.setDefaultResultOrder("ipv4first");

const USER = { email: "openid-client@example.com", password: "correct horse battery staple", name: "Ada Lovelace" };
const WEB_REDIRECT_URI = "https://rp.example.test/oidc/callback"; // a web RP's callback; nothing listens
const NATIVE_REDIRECT_URI = "http://127.0.0.1:53682/callback"; // a native client's loopback redirect
const verbose = process.env.INTEROP_VERBOSE === "1";
const log = (...a) => verbose && console.log(...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// What the Configuration of every client executes (discovery / registration `execute`):
//  - allowInsecureRequests: ONLY because the test servers speak plain http on loopback
//    (http://localhost:PORT); openid-client refuses non-https requests otherwise. Every other
//    check of the library stays on. (In `execute` it also covers the discovery request itself.)
//  - enableNonRepudiationChecks: by default openid-client does NOT verify the signature of an
//    id_token that comes from the token endpoint: it relies on TLS server authentication instead
//    (OIDC Core 3.1.3.7 item 6 allows that). There is no TLS here, and the point of this suite is
//    the id_token: this makes the library verify its JWS signature against `jwks_uri`.
const EXECUTE = [oidc.allowInsecureRequests, oidc.enableNonRepudiationChecks];

/** The decoded header and payload of a JWS (no verification: the library verified it). */
function decodeJwt(jwt) {
  const [h, p] = jwt.split(".");
  const part = (s) => JSON.parse(Buffer.from(s, "base64url").toString("utf8"));
  return { header: part(h), payload: part(p) };
}

const redactKeys = (k, v) => (/token|secret|code_verifier/i.test(k) && typeof v === "string" ? `${v.slice(0, 4)}…` : v);

/**
 * Describes a library error for a failure message: openid-client wraps oauth4webapi's errors in
 * a ClientError ("invalid response encountered", ...) whose cause says what was wrong.
 */
function describeError(e, depth = 0) {
  const bits = [`${e?.name ?? "Error"}: ${e?.message}`];
  if (e?.code) bits.push(`code=${e.code}`);
  if (e?.error) bits.push(`error=${e.error}`);
  if (e?.error_description) bits.push(`error_description=${e.error_description}`);
  if (e?.status) bits.push(`status=${e.status}`);
  if (e?.cause instanceof Error && depth < 3) {
    bits.push(`cause: ${describeError(e.cause, depth + 1)}`);
  } else if (e?.cause !== undefined) {
    let cause;
    try {
      cause = JSON.stringify(e.cause, redactKeys);
    } catch {
      cause = String(e.cause);
    }
    bits.push(`cause=${cause?.slice(0, 1500)}`);
  }
  return bits.join(" | ");
}

/** assert.rejects, matching `pattern` against the error and its causes (see describeError). */
async function rejectsWith(promise, pattern, message) {
  await assert.rejects(promise, (e) => {
    log(`refused as expected (${message ?? pattern}): ${describeError(e).slice(0, 300)}`);
    assert.match(describeError(e), pattern, message);
    return true;
  });
}

/**
 * One mcpauth server with its user and a recorder. `steps()` gives `run(t, name, fn)`: a
 * sequential step of a test, skipped once an earlier step of the same test failed; when a library
 * call rejects, the step fails with the error in full and the last exchanges the library made.
 */
function scenario(name, env) {
  const ctx = { name, env, recorder: createRecorder(), failed: false };
  ctx.start = async () => {
    ctx.server = await startServer({ name: `interop-${name}`, env });
    ctx.user = await signUp(ctx.server.issuer, USER);
    log(`[${name}] mcpauth at ${ctx.server.issuer}`);
  };
  ctx.stop = async () => {
    if (process.env.INTEROP_TRAFFIC_DIR) {
      fs.mkdirSync(process.env.INTEROP_TRAFFIC_DIR, { recursive: true });
      fs.writeFileSync(
        path.join(process.env.INTEROP_TRAFFIC_DIR, `openid-client-${name}.json`),
        JSON.stringify(ctx.recorder.entries, null, 2),
      );
    }
    if (ctx.failed) {
      console.error(`---- [${name}] what openid-client sent and got ----\n${ctx.recorder.summary()}`);
      console.error(`---- [${name}] mcpauth output (last 40 lines) ----\n${ctx.server?.log().split("\n").slice(-40).join("\n")}`);
    }
    await ctx.server?.stop();
  };
  /** A fresh sequence of steps (one per test): once a step fails, the later ones are skipped. */
  ctx.steps = () => {
    let failed = false;
    return async (t, stepName, fn) => {
      if (failed) return t.test(stepName, { skip: "an earlier step failed" }, () => {});
      return t.test(stepName, async () => {
        const mark = ctx.recorder.entries.length;
        try {
          await fn();
        } catch (e) {
          failed = true;
          ctx.failed = true;
          if (e instanceof assert.AssertionError) throw e;
          const made = ctx.recorder.entries.length - mark;
          const err = new Error(
            `${describeError(e)}\n---- the library's last exchanges ----\n${ctx.recorder.details(Math.min(Math.max(made, 1), 3))}`,
          );
          err.cause = e;
          throw err;
        }
      });
    };
  };
  /** Options for discovery() / dynamicClientRegistration(): plain http on loopback + recorder. */
  ctx.options = () => ({ execute: EXECUTE, [oidc.customFetch]: ctx.recorder.fetch });
  /** The exchanges made since `mark`, as "METHOD /path STATUS". */
  ctx.since = (mark) =>
    ctx.recorder.entries.slice(mark).map((e) => `${e.method} ${new URL(e.url).pathname} ${e.status ?? e.error}`);
  return ctx;
}

/** Registers a client through the library (RFC 7591 / OIDC Dynamic Client Registration). */
async function register(ctx, kind) {
  const confidential = kind === "confidential";
  const metadata = {
    client_name: `mcpauth interop (openid-client, ${kind})`,
    redirect_uris: [confidential ? WEB_REDIRECT_URI : NATIVE_REDIRECT_URI],
    grant_types: ["authorization_code", "refresh_token"],
    response_types: ["code"],
    token_endpoint_auth_method: confidential ? "client_secret_basic" : "none",
    application_type: confidential ? "web" : "native",
  };
  // Without an explicit ClientAuth the library would default to client_secret_post for a client
  // that got a secret: say what was registered.
  const auth = confidential ? oidc.ClientSecretBasic() : oidc.None();
  const mark = ctx.recorder.entries.length;
  const config = await oidc.dynamicClientRegistration(new URL(ctx.server.issuer), metadata, auth, ctx.options());
  const reg = ctx.recorder.entries.slice(mark).find((e) => e.url.endsWith("/api/auth/mcp/register"));
  assert.equal(reg?.status, 201, "registration answered 201");
  const m = config.clientMetadata();
  assert.ok(m.client_id, "a client_id was issued");
  assert.equal(m.token_endpoint_auth_method, metadata.token_endpoint_auth_method);
  assert.deepEqual(m.redirect_uris, metadata.redirect_uris);
  if (confidential) assert.ok(m.client_secret, "a confidential client got a client_secret");
  else assert.equal(m.client_secret, undefined, "a public client got no client_secret");
  log(`[${ctx.name}] registered ${kind} client ${m.client_id}`);
  return { config, kind, redirectUri: metadata.redirect_uris[0] };
}

/**
 * The authorization code flow: browse() (PKCE S256 + state + nonce in the URL the library builds,
 * the browser step headlessly), then authorizationCodeGrant with every check on.
 */
async function signIn(ctx, rp, { scope, probeChecks = false }) {
  const { url, cb, callbackUrl, checks } = await browse(ctx, rp, { scope, probeChecks });
  const mark = ctx.recorder.entries.length;
  const tokens = await oidc.authorizationCodeGrant(rp.config, callbackUrl, checks);
  const calls = ctx.since(mark);
  assert.equal(calls[0], "POST /api/auth/mcp/token 200", `token request first: ${calls.join(", ")}`);
  return { url, cb, tokens, nonce: checks.expectedNonce, calls, tokenCall: ctx.recorder.entries[mark] };
}

/**
 * Builds the authorization URL and does the browser step; returns the callback and the checks for
 * authorizationCodeGrant. With `probeChecks`, first shows that the library refuses the callback
 * with a wrong or missing `iss` or a wrong `state`, before any token request (the code stays
 * unused).
 */
async function browse(ctx, rp, { scope, probeChecks = false }) {
  const { config, redirectUri } = rp;
  const pkceCodeVerifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope,
    code_challenge: await oidc.calculatePKCECodeChallenge(pkceCodeVerifier),
    code_challenge_method: "S256",
    state,
    nonce,
  });
  assert.equal(url.origin + url.pathname, config.serverMetadata().authorization_endpoint);
  assert.equal(url.searchParams.get("client_id"), config.clientMetadata().client_id);
  assert.equal(url.searchParams.get("response_type"), "code");
  assert.equal(url.searchParams.get("code_challenge_method"), "S256");

  const cb = await authorizeHeadlessly(url.href, { redirectUri, email: USER.email, password: USER.password, log });
  assert.ok(cb.code, "an authorization code came back");
  const callbackUrl = new URL(cb.callbackUrl);
  const checks = { pkceCodeVerifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true };

  if (probeChecks) {
    const mark = ctx.recorder.entries.length;
    const forged = new URL(callbackUrl);
    forged.searchParams.set("iss", "https://attacker.example");
    await rejectsWith(oidc.authorizationCodeGrant(config, forged, checks), /"iss"/, "a callback with another iss is refused");
    const wrongState = new URL(callbackUrl);
    wrongState.searchParams.set("state", oidc.randomState());
    await rejectsWith(oidc.authorizationCodeGrant(config, wrongState, checks), /"state"/, "a callback with another state is refused");
    const noIss = new URL(callbackUrl);
    noIss.searchParams.delete("iss");
    await rejectsWith(
      oidc.authorizationCodeGrant(config, noIss, checks),
      /"iss" \(issuer\) missing/,
      "the metadata promises iss on the callback: a callback without it is refused",
    );
    assert.deepEqual(ctx.since(mark), [], "the library refused those callbacks without calling the server");
  }

  return { url, cb, callbackUrl, checks };
}

/**
 * The signature check is real: one code grant whose token response is altered on its way to the
 * library (one character of the id_token's signature changed) must be refused.
 */
async function tamperedSignatureRefused(ctx, rp, scope) {
  const { callbackUrl, checks } = await browse(ctx, rp, { scope });
  const original = rp.config[oidc.customFetch];
  let tampered = false;
  rp.config[oidc.customFetch] = async (url, init) => {
    const res = await original(url, init);
    if (!String(url).endsWith("/api/auth/mcp/token") || res.status !== 200) return res;
    const body = await res.json();
    const [h, p, sig] = body.id_token.split(".");
    const i = Math.floor(sig.length / 2);
    body.id_token = `${h}.${p}.${sig.slice(0, i)}${sig[i] === "A" ? "B" : "A"}${sig.slice(i + 1)}`;
    tampered = true;
    return new Response(JSON.stringify(body), { status: res.status, headers: res.headers });
  };
  try {
    await rejectsWith(oidc.authorizationCodeGrant(rp.config, callbackUrl, checks), /JWT signature verification failed/, "an altered id_token signature is refused");
  } finally {
    rp.config[oidc.customFetch] = original;
  }
  assert.ok(tampered, "the token response was altered");
}

/** What the code grant gave and what the library verified, checked against the server. */
function checkCodeGrant(ctx, rp, grant, { alg, scope, firstUse = true }) {
  const { server, user } = ctx;
  const { config, kind } = rp;
  const { cb, tokens, nonce, calls, tokenCall } = grant;
  const clientId = config.clientMetadata().client_id;

  // RFC 9207: the callback carried iss (the library compared it to the metadata issuer).
  assert.equal(cb.iss, server.issuer, "iss on the callback is the issuer");
  // The library fetched jwks_uri to verify the id_token signature (once per Configuration: it
  // caches the key set).
  if (firstUse) assert.ok(calls.includes("GET /api/auth/mcp/jwks 200"), `the library fetched the JWKS: ${calls.join(", ")}`);

  // How the client authenticated at the token endpoint.
  const req = tokenCall.request;
  assert.equal(req.body.grant_type, "authorization_code");
  assert.ok(req.body.code_verifier, "the PKCE code_verifier was sent");
  assert.equal(req.body.redirect_uri, rp.redirectUri);
  if (kind === "confidential") {
    assert.match(req.headers.authorization ?? "", /^Basic /, "client_secret_basic: an Authorization: Basic header");
    assert.equal(req.body.client_secret, undefined, "no client_secret in the body");
  } else {
    assert.equal(req.headers.authorization, undefined, "a public client sends no Authorization header");
    assert.equal(req.body.client_id, clientId, "a public client names itself in the body");
  }
  assert.match(tokenCall.response.headers["cache-control"] ?? "", /no-store/);

  assert.equal(tokens.token_type.toLowerCase(), "bearer");
  assert.ok(tokens.access_token, "an access token");
  assert.ok(tokens.refresh_token, "a refresh token");
  assert.ok(tokens.id_token, "an id_token");
  assert.deepEqual(tokens.scope.split(" ").sort(), scope.split(" ").sort(), "the granted scope");

  const claims = tokens.claims(); // the id_token claims, as the library validated them
  assert.equal(claims.iss, server.issuer);
  assert.equal(claims.sub, user.id, "sub is the user's id");
  assert.deepEqual([claims.aud].flat(), [clientId], "aud is the client");
  assert.equal(claims.nonce, nonce);
  assert.ok(claims.exp > claims.iat, "exp after iat");
  if (scope.includes("email")) assert.equal(claims.email, USER.email);

  const { header } = decodeJwt(tokens.id_token);
  assert.equal(header.alg, alg, `id_token signed with ${alg}`);
  assert.deepEqual(config.serverMetadata().id_token_signing_alg_values_supported, [alg]);
  const jwksCall = ctx.recorder.entries.filter((e) => e.url.endsWith("/api/auth/mcp/jwks")).at(-1);
  const key = jwksCall.response.body.keys.find((k) => k.kid === header.kid);
  assert.ok(key, `the id_token's kid ${header.kid} is in the JWKS`);
  assert.equal(key.kty, alg === "RS256" ? "RSA" : "EC");
  if (key.alg) assert.equal(key.alg, alg);
  return claims;
}

/** fetchUserInfo with the id_token's sub as the expected subject (the library compares them). */
async function checkUserInfo(ctx, rp, accessToken, sub, scope) {
  const info = await oidc.fetchUserInfo(rp.config, accessToken, sub);
  assert.equal(info.sub, sub);
  if (scope.includes("email")) {
    assert.equal(info.email, USER.email);
    assert.equal(typeof info.email_verified, "boolean");
  }
  if (scope.includes("profile")) assert.equal(info.name, USER.name);
  return info;
}

/** A library call that must fail because the server refused the grant (RFC 6749 §5.2). */
async function assertInvalidGrant(promise, message) {
  await assert.rejects(promise, (e) => {
    assert.ok(e instanceof oidc.ResponseBodyError, `${message}: a ResponseBodyError, got ${describeError(e)}`);
    assert.equal(e.error, "invalid_grant", `${message}: ${describeError(e)}`);
    assert.equal(e.status, 400, message);
    return true;
  });
}

/** A userinfo call that must fail with 401 invalid_token (RFC 6750 §3.1). */
async function assertUserInfoRefused(rp, accessToken, sub, message) {
  await assert.rejects(oidc.fetchUserInfo(rp.config, accessToken, sub), (e) => {
    assert.ok(e instanceof oidc.WWWAuthenticateChallengeError, `${message}: a WWWAuthenticateChallengeError, got ${describeError(e)}`);
    assert.equal(e.status, 401, message);
    const bearer = e.cause.find((c) => c.scheme === "bearer");
    assert.equal(bearer?.parameters?.error, "invalid_token", `${message}: ${JSON.stringify(e.cause)}`);
    return true;
  });
}

// ---------------------------------------------------------------------------------------------
// ES256 (the default signing algorithm). refresh_reuse_grace = 0 and refresh_reuse_policy =
// strict: mcpauth answers a retry of a just-rotated refresh token with the same answer for
// refresh_reuse_grace seconds (30 by default, for a client that lost the answer), and by default
// tolerates the previous token for a few minutes (parallel sessions); with these settings the old
// token is refused as soon as the clock has moved on a second. The RS256 scenario below keeps the
// defaults and shows the retry.
const es256 = scenario("es256", {
  MCPAUTH_REFRESH_REUSE_GRACE: "0",
  MCPAUTH_REFRESH_REUSE_POLICY: "strict",
});
// RS256: new signing keys are RSA keys; everything else default.
const rs256 = scenario("rs256", { MCPAUTH_SIGNING_ALGORITHM: "RS256" });

before(async () => {
  await Promise.all([es256.start(), rs256.start()]);
});

after(async () => {
  await Promise.all([es256.stop(), rs256.stop()]);
});

test("discovery: openid-configuration with the library's issuer check", async (t) => {
  const ctx = es256;
  const run = ctx.steps();
  const { issuer } = ctx.server;

  await run(t, "discovery(new URL(issuer)) accepts the metadata", async () => {
    const mark = ctx.recorder.entries.length;
    const config = await oidc.discovery(new URL(issuer), "not-registered-yet", undefined, oidc.None(), ctx.options());
    assert.deepEqual(ctx.since(mark), ["GET /.well-known/openid-configuration 200"]);
    const md = config.serverMetadata();
    assert.equal(md.issuer, issuer, "issuer exactly as the server names itself");
    for (const [field, suffix] of [
      ["authorization_endpoint", "/api/auth/mcp/authorize"],
      ["token_endpoint", "/api/auth/mcp/token"],
      ["userinfo_endpoint", "/api/auth/mcp/userinfo"],
      ["revocation_endpoint", "/api/auth/mcp/revoke"],
      ["registration_endpoint", "/api/auth/mcp/register"],
      ["jwks_uri", "/api/auth/mcp/jwks"],
    ]) {
      assert.equal(md[field], `${issuer}${suffix}`, field);
    }
    assert.equal(md.authorization_response_iss_parameter_supported, true);
    assert.ok(md.code_challenge_methods_supported.includes("S256"));
    assert.ok(md.response_types_supported.includes("code"));
    assert.ok(md.subject_types_supported.length > 0);
    assert.deepEqual(md.id_token_signing_alg_values_supported, ["ES256"]);
    for (const m of ["client_secret_basic", "none"]) assert.ok(md.token_endpoint_auth_methods_supported.includes(m), m);
  });

  await run(t, "the issuer check is on: another spelling of the same server is refused", async () => {
    // Same socket, but the issuer in the document is http://localhost:PORT, not 127.0.0.1.
    const other = new URL(`http://${ctx.server.listen}`);
    await rejectsWith(
      oidc.discovery(other, "not-registered-yet", undefined, oidc.None(), ctx.options()),
      /issuer does not match the expected issuer/,
    );
  });

  await run(t, "without allowInsecureRequests the library refuses plain http", async () => {
    await rejectsWith(oidc.discovery(new URL(issuer), "not-registered-yet", undefined, oidc.None()), /only requests to HTTPS/);
  });
});

for (const kind of ["confidential", "public"]) {
  // The confidential client relies on the registered refresh_token grant for its refresh token
  // (refresh_token_policy = registered_grant, the default); the public one also asks for
  // offline_access.
  const scope = kind === "confidential" ? "openid profile email" : "openid email offline_access";
  test(`ES256: ${kind} client (${kind === "confidential" ? "client_secret_basic" : "none"}): code + PKCE, userinfo, refresh, revocation`, async (t) => {
    const ctx = es256;
    const run = ctx.steps();
    let rp;
    let grant;
    let claims;
    let refreshed;

    await run(t, "dynamicClientRegistration", async () => {
      rp = await register(ctx, kind);
    });

    await run(t, "authorization code + PKCE S256 + state + nonce; id_token verified by the library", async () => {
      grant = await signIn(ctx, rp, { scope, probeChecks: true });
      claims = checkCodeGrant(ctx, rp, grant, { alg: "ES256", scope });
    });

    await run(t, "a token response with an altered id_token signature is refused", async () => {
      await tamperedSignatureRefused(ctx, rp, scope);
    });

    await run(t, "fetchUserInfo(access_token, expectedSubject)", async () => {
      await checkUserInfo(ctx, rp, grant.tokens.access_token, claims.sub, scope);
    });

    await run(t, "refreshTokenGrant: a rotated refresh token; the old one is then refused", async () => {
      const mark = ctx.recorder.entries.length;
      refreshed = await oidc.refreshTokenGrant(rp.config, grant.tokens.refresh_token);
      const call = ctx.recorder.entries[mark];
      assert.equal(call.request.body.grant_type, "refresh_token");
      assert.equal(refreshed.token_type.toLowerCase(), "bearer");
      assert.ok(refreshed.refresh_token, "a new refresh token");
      assert.notEqual(refreshed.refresh_token, grant.tokens.refresh_token, "the refresh token rotated");
      assert.notEqual(refreshed.access_token, grant.tokens.access_token, "a new access token");
      assert.deepEqual(refreshed.scope.split(" ").sort(), scope.split(" ").sort(), "the same scope");
      if (refreshed.id_token) {
        const c = refreshed.claims(); // validated by the library as well
        assert.equal(c.iss, claims.iss);
        assert.equal(c.sub, claims.sub);
        assert.deepEqual(c.aud, claims.aud);
      }
      t.diagnostic(`refresh answer carries an id_token: ${Boolean(refreshed.id_token)}`);
      await checkUserInfo(ctx, rp, refreshed.access_token, claims.sub, scope);

      await sleep(1100); // past refresh_reuse_grace (0 s here; the server counts whole seconds)
      await assertInvalidGrant(
        oidc.refreshTokenGrant(rp.config, grant.tokens.refresh_token),
        "the rotated-out refresh token is refused",
      );
      // Reuse of a rotated refresh token revokes the whole grant (mcpauth SECURITY S12).
      await assertInvalidGrant(
        oidc.refreshTokenGrant(rp.config, refreshed.refresh_token),
        "after the reuse, the newest refresh token of the grant is refused too",
      );
      await assertUserInfoRefused(rp, refreshed.access_token, claims.sub, "after the reuse, the grant's access token is dead");
    });

    await run(t, "tokenRevocation of the refresh token: the grant is dead", async () => {
      const second = await signIn(ctx, rp, { scope });
      checkCodeGrant(ctx, rp, second, { alg: "ES256", scope, firstUse: false });
      await checkUserInfo(ctx, rp, second.tokens.access_token, claims.sub, scope);

      const mark = ctx.recorder.entries.length;
      await oidc.tokenRevocation(rp.config, second.tokens.refresh_token, { token_type_hint: "refresh_token" });
      assert.deepEqual(ctx.since(mark), ["POST /api/auth/mcp/revoke 200"]);
      const revokeCall = ctx.recorder.entries[mark];
      if (kind === "confidential") assert.match(revokeCall.request.headers.authorization ?? "", /^Basic /);
      else assert.equal(revokeCall.request.body.client_id, rp.config.clientMetadata().client_id);

      await assertUserInfoRefused(rp, second.tokens.access_token, claims.sub, "userinfo with the grant's access token");
      await assertInvalidGrant(oidc.refreshTokenGrant(rp.config, second.tokens.refresh_token), "refresh with the revoked token");
      // RFC 7009 §2.2: revoking it again (already invalid) is still a 200.
      await oidc.tokenRevocation(rp.config, second.tokens.refresh_token, { token_type_hint: "refresh_token" });
    });
  });
}

test("RS256 server: id_token verified against an RSA key; refresh retry within the grace window; revocation", async (t) => {
  const ctx = rs256;
  const run = ctx.steps();
  const scope = "openid profile email";
  let rp;
  let grant;
  let claims;

  await run(t, "discovery: RS256 advertised", async () => {
    const config = await oidc.discovery(new URL(ctx.server.issuer), "not-registered-yet", undefined, oidc.None(), ctx.options());
    assert.deepEqual(config.serverMetadata().id_token_signing_alg_values_supported, ["RS256"]);
  });

  await run(t, "dynamicClientRegistration (confidential, client_secret_basic)", async () => {
    rp = await register(ctx, "confidential");
  });

  await run(t, "authorization code + PKCE + state + nonce; RS256 id_token verified by the library", async () => {
    grant = await signIn(ctx, rp, { scope, probeChecks: true });
    claims = checkCodeGrant(ctx, rp, grant, { alg: "RS256", scope });
  });

  await run(t, "a token response with an altered RS256 id_token signature is refused", async () => {
    await tamperedSignatureRefused(ctx, rp, scope);
  });

  await run(t, "fetchUserInfo", async () => {
    await checkUserInfo(ctx, rp, grant.tokens.access_token, claims.sub, scope);
  });

  await run(t, "refreshTokenGrant; a retry of the old token within refresh_reuse_grace gets the same answer", async () => {
    const refreshed = await oidc.refreshTokenGrant(rp.config, grant.tokens.refresh_token);
    assert.notEqual(refreshed.refresh_token, grant.tokens.refresh_token, "the refresh token rotated");
    if (refreshed.id_token) assert.equal(decodeJwt(refreshed.id_token).header.alg, "RS256");
    // Default refresh_reuse_grace (30 s): a client that lost the answer may retry and gets the
    // same answer back, not a second grant.
    const retried = await oidc.refreshTokenGrant(rp.config, grant.tokens.refresh_token);
    assert.equal(retried.refresh_token, refreshed.refresh_token, "the retry returns the same refresh token");
    assert.equal(retried.access_token, refreshed.access_token, "the retry returns the same access token");
    await checkUserInfo(ctx, rp, refreshed.access_token, claims.sub, scope);

    await oidc.tokenRevocation(rp.config, refreshed.refresh_token, { token_type_hint: "refresh_token" });
    await assertUserInfoRefused(rp, refreshed.access_token, claims.sub, "userinfo after revocation");
    await assertInvalidGrant(oidc.refreshTokenGrant(rp.config, refreshed.refresh_token), "refresh after revocation");
  });
});
