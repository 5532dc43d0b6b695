// The OAuthClientProvider of the TS SDK clients (v1 `sdk/client/auth.d.ts`, v2
// `@modelcontextprotocol/client`, the same interface) for the interop tests: its
// redirect step is the headless UA (lib/headless-ua.mjs), which signs in, consents and brings
// the callback back.
import { randomBytes } from "node:crypto";
import { authorizeHeadlessly } from "./headless-ua.mjs";

/** OAuthClientProvider (sdk/client/auth.d.ts) whose redirect step is the headless UA. */
export class HeadlessProvider {
  /** `redirectUri`: where the UA stops; `user`: { email, password } it signs in as. */
  constructor({ redirectUri, user, clientName, log = () => {} }) {
    this.options = { redirectUri, user, clientName, log };
    this.callbacks = []; // every callback the "browser" brought back: { code, state, iss, ... }
    this.authorizationUrls = []; // every authorization URL the SDK built
    this.discovery = undefined; // what the SDK discovered (saveDiscoveryState)
    this._state = undefined;
  }
  get redirectUrl() {
    return this.options.redirectUri;
  }
  get clientMetadata() {
    return {
      client_name: this.options.clientName,
      redirect_uris: [this.options.redirectUri],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  }
  state() {
    this._state = randomBytes(16).toString("base64url");
    return this._state;
  }
  clientInformation() {
    return this._client;
  }
  saveClientInformation(info) {
    this._client = info;
  }
  tokens() {
    return this._tokens;
  }
  saveTokens(tokens) {
    this._tokens = tokens;
  }
  saveCodeVerifier(v) {
    this._verifier = v;
  }
  codeVerifier() {
    return this._verifier;
  }
  saveDiscoveryState(s) {
    this.discovery = s;
  }
  discoveryState() {
    return this.discovery;
  }
  invalidateCredentials(scope) {
    if (scope === "all" || scope === "client") this._client = undefined;
    if (scope === "all" || scope === "tokens") this._tokens = undefined;
    if (scope === "all" || scope === "verifier") this._verifier = undefined;
    if (scope === "all" || scope === "discovery") this.discovery = undefined;
  }
  async redirectToAuthorization(authorizationUrl) {
    this.authorizationUrls.push(new URL(authorizationUrl));
    const cb = await authorizeHeadlessly(authorizationUrl, {
      redirectUri: this.options.redirectUri,
      email: this.options.user.email,
      password: this.options.user.password,
      log: this.options.log,
    });
    // The SDKs do not check `state` (v1 1.32.x checks `iss` neither; v2 checks it in finishAuth()):
    // this checks `state`, the tests' assertions `iss`.
    if (cb.state !== this._state) throw new Error(`state mismatch: sent ${this._state}, got ${cb.state}`);
    this.callbacks.push(cb);
  }
  get lastCallback() {
    return this.callbacks.at(-1);
  }
}
