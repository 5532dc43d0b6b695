// The third-party service behind the tools, with real parts:
//
// - panva's oidc-provider (OpenID-certified, pinned) as its OAuth provider: one confidential
//   client for mcpauth's connection (authorization code + PKCE, refresh tokens always issued and
//   rotated), one for the API (introspection only); access tokens live `accessTtl` seconds (the
//   test shortens and lengthens it); introspection and revocation are on; its development login
//   and consent screens stand for the user's sign-in there.
// - a protected API (`GET /whoami`) that checks the bearer with the provider's introspection
//   endpoint (RFC 7662) and answers who the token belongs to.
//
// Everything the provider issues is recorded (`issued`: every access and refresh token value), so
// that the test can look for those strings where they must never be; every token request is
// counted by grant type (`grants`), so that the test can count refreshes.
//
//   const service = await startService({ redirectUri });
//   service.issuer, service.apiUrl, service.connectionClient, service.grants, service.issued,
//   service.accessTtl = 5, await service.revokeGrants(), await service.close()
import crypto from "node:crypto";
import http from "node:http";
import Provider from "oidc-provider";

const listen = (server) =>
  new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server.address().port)));

export async function startService({ redirectUri, accessTtl = 3600 }) {
  const connectionClient = { id: "mcpauth-connection", secret: crypto.randomBytes(24).toString("hex") };
  const apiClient = { id: "tasks-api", secret: crypto.randomBytes(24).toString("hex") };
  const state = {
    accessTtl,
    grants: { authorization_code: 0, refresh_token: 0, refused: 0 },
    issued: new Set(), // every access / refresh token value the provider handed out
    grantIds: new Set(),
    introspections: 0,
    seenByApi: [], // the bearer tokens the API received, in order
  };

  const opServer = http.createServer();
  const opPort = await listen(opServer);
  const issuer = `http://127.0.0.1:${opPort}`;
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: connectionClient.id,
        client_secret: connectionClient.secret,
        redirect_uris: [redirectUri],
        grant_types: ["authorization_code", "refresh_token"],
        response_types: ["code"],
        token_endpoint_auth_method: "client_secret_basic",
      },
      {
        client_id: apiClient.id,
        client_secret: apiClient.secret,
        redirect_uris: [],
        grant_types: [],
        response_types: [],
        token_endpoint_auth_method: "client_secret_basic",
      },
    ],
    scopes: ["openid", "offline_access", "profile"],
    claims: { openid: ["sub"], profile: ["name"] },
    async findAccount(_ctx, id) {
      return { accountId: id, async claims() { return { sub: id, name: `${id} at the service` }; } };
    },
    // A refresh token with every code, whatever the scopes; a new one at every refresh.
    issueRefreshToken: async () => true,
    rotateRefreshToken: true,
    ttl: {
      AccessToken: () => state.accessTtl,
      RefreshToken: 24 * 3600,
      Grant: 24 * 3600,
    },
    pkce: { required: () => true },
    cookies: { keys: [crypto.randomBytes(32).toString("hex")] },
    features: {
      devInteractions: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
    },
  });
  provider.on("access_token.saved", (token) => {
    state.issued.add(token.jti);
    state.grantIds.add(token.grantId);
  });
  provider.on("refresh_token.saved", (token) => {
    state.issued.add(token.jti);
    state.grantIds.add(token.grantId);
  });
  provider.on("grant.success", (ctx) => {
    const type = ctx.oidc.params?.grant_type;
    if (type in state.grants) state.grants[type] += 1;
  });
  provider.on("grant.error", (ctx) => {
    if (ctx.oidc?.params?.grant_type === "refresh_token") state.grants.refused += 1;
  });
  opServer.on("request", provider.callback());

  // The protected API: whoever the provider's introspection says the bearer belongs to.
  const api = http.createServer(async (req, res) => {
    const url = new URL(req.url, "http://127.0.0.1");
    const bearer = (req.headers.authorization ?? "").match(/^Bearer (\S+)$/)?.[1];
    if (url.pathname !== "/whoami") return res.writeHead(404).end();
    if (!bearer) return res.writeHead(401, { "www-authenticate": "Bearer" }).end();
    state.seenByApi.push(bearer);
    state.introspections += 1;
    const answer = await fetch(`${issuer}/token/introspection`, {
      method: "POST",
      headers: {
        "content-type": "application/x-www-form-urlencoded",
        authorization: `Basic ${Buffer.from(`${apiClient.id}:${apiClient.secret}`).toString("base64")}`,
      },
      body: new URLSearchParams({ token: bearer }).toString(),
    });
    const introspected = await answer.json();
    if (!introspected.active) {
      return res.writeHead(401, { "www-authenticate": 'Bearer error="invalid_token"' }).end();
    }
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ sub: introspected.sub, client_id: introspected.client_id, scope: introspected.scope }));
  });
  const apiPort = await listen(api);

  return {
    issuer,
    apiUrl: `http://127.0.0.1:${apiPort}`,
    connectionClient,
    provider,
    get grants() {
      return { ...state.grants };
    },
    get issued() {
      return [...state.issued];
    },
    get seenByApi() {
      return [...state.seenByApi];
    },
    set accessTtl(seconds) {
      state.accessTtl = seconds;
    },
    /** The provider withdraws every grant it made: no refresh token works any more. */
    async revokeGrants() {
      for (const id of state.grantIds) {
        const grant = await provider.Grant.find(id);
        if (grant) await grant.destroy();
      }
    },
    async close() {
      await new Promise((resolve) => opServer.close(resolve));
      await new Promise((resolve) => api.close(resolve));
    },
  };
}
