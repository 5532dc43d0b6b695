// Interop: the official MCP TypeScript SDK v2 client (@modelcontextprotocol/client, pinned in
// package.json) completes the whole OAuth flow against a live `mcpauth serve` and uses the demo
// MCP endpoint (the v1 client is ts-sdk.test.mjs):
//
//   401 -> protected resource metadata -> AS metadata -> dynamic registration -> authorize
//   (headless: the real sign-in and consent forms) -> token -> initialize -> tools/list -> echo
//   -> admin_echo: 403 insufficient_scope -> step-up re-authorization -> success -> whoami
//
// The browser step is `lib/headless-ua.mjs`: it posts the forms with a cookie jar and stops at the
// redirect to redirect_uri (nothing listens there).
//
// Unlike v1, v2 checks RFC 9207 `iss` itself (finishAuth gets the whole callback query), checks that
// the AS metadata's issuer echoes the URL it came from, and steps up with the union of the old and
// the challenged scopes without the refresh detour of typescript-sdk#2255.
//
//   npm ci && node --test ts-sdk-v2.test.mjs    # from this folder, after `cargo build -p mcpauth-server`
//
// Environment: MCPAUTH_BIN (default <repo>/target/debug/mcpauth); INTEROP_VERBOSE=1 prints the flow;
// INTEROP_TRAFFIC_DIR=dir writes what the SDK sent and got (secrets shortened) to dir/ts-sdk-v2.json;
// INTEROP_KEEP_TMP=1 keeps the server's temp dir.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import dns from "node:dns";
import fs from "node:fs";
import path from "node:path";
import { Client, StreamableHTTPClientTransport, UnauthorizedError } from "@modelcontextprotocol/client";
import { startServer, signUp } from "./lib/server.mjs";
import { HeadlessProvider } from "./lib/headless-provider.mjs";
import { createRecorder } from "./lib/recorder.mjs";

// The server listens on 127.0.0.1 while the issuer says `localhost`: resolve it to IPv4 first.
dns.setDefaultResultOrder("ipv4first");

const REDIRECT_URI = "http://127.0.0.1:53682/callback"; // a native client's loopback redirect; nothing listens
const USER = { email: "ts-sdk-v2@example.com", password: "correct horse battery staple", name: "TS SDK v2" };
const verbose = process.env.INTEROP_VERBOSE === "1";
const log = (...a) => verbose && console.log(...a);

let server;
let user; // the signed-up user, as the account API returned it ({ id, email, ... })
const recorder = createRecorder();
let failed = false;

before(async () => {
  server = await startServer({ name: "interop-ts-v2" });
  user = await signUp(server.issuer, USER);
  log(`mcpauth at ${server.issuer}`);
});

after(async () => {
  if (process.env.INTEROP_TRAFFIC_DIR) {
    fs.mkdirSync(process.env.INTEROP_TRAFFIC_DIR, { recursive: true });
    fs.writeFileSync(path.join(process.env.INTEROP_TRAFFIC_DIR, "ts-sdk-v2.json"), JSON.stringify(recorder.entries, null, 2));
  }
  if (failed) {
    console.error("---- what the SDK sent and got ----\n" + recorder.summary());
    console.error("---- mcpauth output (last 60 lines) ----\n" + server?.log().split("\n").slice(-60).join("\n"));
  }
  await server?.stop();
});

test("TS SDK v2: OAuth flow, tools, step-up and whoami against mcpauth", async (t) => {
  const provider = new HeadlessProvider({ redirectUri: REDIRECT_URI, user: USER, clientName: "mcpauth interop (TS SDK v2)", log });
  const client = new Client({ name: "mcpauth-interop-ts-v2", version: "1.0.0" });
  const newTransport = () =>
    new StreamableHTTPClientTransport(new URL(server.mcpUrl), { authProvider: provider, fetch: recorder.fetch });
  let transport = newTransport();

  const step = async (name, fn) => {
    if (failed) return t.test(name, { skip: "an earlier step failed" }, () => {});
    return t.test(name, async () => {
      try {
        await fn();
      } catch (e) {
        failed = true;
        throw e;
      }
    });
  };

  await step("401 -> discovery -> registration -> authorize (headless) -> token -> initialize", async () => {
    // POST initialize -> 401 -> auth(): PRM, AS metadata, DCR, then redirectToAuthorization() -> throws
    await assert.rejects(client.connect(transport), (e) => e instanceof UnauthorizedError);
    assert.equal(provider.callbacks.length, 1, "the SDK sent the browser to /authorize once");
    const cb = provider.lastCallback;
    assert.ok(cb.code, "an authorization code came back");

    // The whole callback query: the SDK validates iss (RFC 9207) before it redeems the code.
    await transport.finishAuth(new URL(cb.callbackUrl).searchParams); // POST /token
    transport = newTransport(); // a started transport cannot be restarted
    await client.connect(transport);
    assert.ok(client.getServerVersion()?.name, "initialize answered with serverInfo");

    // The order the SDK went through, from the recorded traffic.
    const seen = recorder.entries.map((e) => `${e.method} ${new URL(e.url).pathname} ${e.status}`);
    const expectOrder = [
      /^POST \/api\/mcp 401$/,
      /^GET \/\.well-known\/oauth-protected-resource\/api\/mcp 200$/,
      /^GET \/\.well-known\/oauth-authorization-server 200$/,
      /^POST \/api\/auth\/mcp\/register 201$/,
      /^POST \/api\/auth\/mcp\/token 200$/,
      /^POST \/api\/mcp 200$/,
    ];
    let i = 0;
    for (const line of seen) if (i < expectOrder.length && expectOrder[i].test(line)) i++;
    assert.equal(i, expectOrder.length, `flow order: got\n${seen.join("\n")}`);

    const first401 = recorder.entries.find((e) => e.status === 401);
    assert.match(first401.response.headers["www-authenticate"], /^Bearer .*resource_metadata="/);

    const authUrl = provider.authorizationUrls[0];
    assert.equal(authUrl.searchParams.get("code_challenge_method"), "S256");
    assert.equal(authUrl.searchParams.get("resource"), server.mcpUrl, "resource indicator sent to /authorize");
    // v2 takes the 401 challenge's scope and adds offline_access, since the AS metadata lists it in
    // scopes_supported and the client registered the refresh_token grant (SEP-2207).
    assert.deepEqual(authUrl.searchParams.get("scope").split(" ").sort(), ["mcp:tools", "offline_access"]);

    // RFC 9207: the callback carried iss, equal to the issuer (the SDK itself does not check it).
    assert.equal(cb.iss, server.issuer, "iss on the callback is the issuer");
    assert.equal(provider.discovery?.authorizationServerMetadata?.issuer, server.issuer, "AS metadata issuer");
    assert.equal(provider.discovery?.authorizationServerMetadata?.authorization_response_iss_parameter_supported, true);

    const token = provider.tokens();
    assert.equal(token.token_type.toLowerCase(), "bearer");
    assert.ok(token.access_token && token.refresh_token, "access and refresh token");
    assert.deepEqual(token.scope.split(" ").sort(), ["mcp:tools", "offline_access"]);
    const tokenCall = recorder.entries.find((e) => e.url.endsWith("/mcp/token") && e.status === 200);
    assert.match(tokenCall.response.headers["cache-control"], /no-store/);
    assert.equal(tokenCall.request.body.resource, server.mcpUrl, "resource indicator sent to /token");
  });

  await step("tools/list", async () => {
    const { tools } = await client.listTools();
    const names = tools.map((x) => x.name);
    for (const n of ["echo", "whoami", "admin_echo"]) assert.ok(names.includes(n), `tools/list has ${n}: ${names}`);
  });

  await step("tools/call echo", async () => {
    const r = await client.callTool({ name: "echo", arguments: { message: "hello from TS SDK v2" } });
    assert.ok(!r.isError, JSON.stringify(r));
    assert.equal(r.content[0].type, "text");
    assert.equal(r.content[0].text, "Tool echo: hello from TS SDK v2");
    assert.equal(r.content[1]?.type, "text", "a second text item names the caller");
    // "called by user <user id> through client <client_id> with scopes <scopes>"
    assert.ok(r.content[1].text.includes(user.id), `caller names the user ${user.id}: ${r.content[1].text}`);
    const clientId = provider.clientInformation().client_id;
    assert.ok(r.content[1].text.includes(clientId), `caller names the client ${clientId}: ${r.content[1].text}`);
  });

  await step("step-up: admin_echo -> 403 insufficient_scope -> re-authorize -> success", async () => {
    // v2 answers a 403 insufficient_scope by re-authorizing with the union of its scopes and the
    // challenged ones (SEP-2350), bypassing refresh since refresh cannot widen scope. The redirect
    // step ends in UnauthorizedError after the headless UA already came back with the callback:
    // finish on the same transport and call again. No workaround is needed here.
    const call = () => client.callTool({ name: "admin_echo", arguments: { message: "root" } });
    let result;
    try {
      result = await call();
    } catch (e) {
      if (!(e instanceof UnauthorizedError)) throw e;
      await transport.finishAuth(new URL(provider.lastCallback.callbackUrl).searchParams);
      result = await call();
    }
    const refreshes = recorder.entries.filter((e) => e.request.body?.grant_type === "refresh_token");
    assert.equal(refreshes.length, 0, "v2 did not try a refresh on the step-up");

    assert.ok(!result.isError, JSON.stringify(result));
    assert.match(result.content[0].text, /root/, JSON.stringify(result.content));

    const forbidden = recorder.entries.find((e) => e.status === 403);
    assert.ok(forbidden, "the server answered 403 first");
    const www = forbidden.response.headers["www-authenticate"];
    assert.match(www, /error="insufficient_scope"/);
    assert.match(www, /scope="mcp:tools mcp:admin"/);
    assert.match(www, /resource_metadata="/);

    assert.equal(provider.callbacks.length, 2, "a second authorization happened");
    const stepUpUrl = provider.authorizationUrls.at(-1);
    // the union of what it had and what the challenge names (SEP-2350)
    assert.deepEqual(stepUpUrl.searchParams.get("scope").split(" ").sort(), ["mcp:admin", "mcp:tools", "offline_access"]);
    assert.equal(provider.lastCallback.iss, server.issuer, "iss on the step-up callback is the issuer");
    const scopes = provider.tokens().scope.split(" ");
    assert.ok(scopes.includes("mcp:admin"), `final token scope includes mcp:admin: ${scopes}`);
    assert.ok(scopes.includes("mcp:tools"), `final token scope keeps mcp:tools: ${scopes}`);
  });

  await step("tools/call whoami", async () => {
    const r = await client.callTool({ name: "whoami", arguments: {} });
    assert.ok(!r.isError, JSON.stringify(r));
    // whoami answers with the bearer session as JSON: { tokenId, userId, clientId, scopes, audience, expiresAt }
    const who = JSON.parse(r.content[0].text);
    assert.equal(who.userId, user.id);
    assert.equal(who.clientId, provider.clientInformation().client_id);
    assert.equal(who.audience, server.mcpUrl);
    assert.ok(who.scopes.includes("mcp:admin"), `whoami shows the stepped-up scope: ${who.scopes}`);
  });

  // Stateless server: no Mcp-Session-Id, so terminateSession() sends nothing.
  await transport.terminateSession();
  await client.close();
  log(recorder.summary());
});
