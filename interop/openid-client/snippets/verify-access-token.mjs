// Verifying mcpauth's JWT access tokens (RFC 9068) in a TypeScript/JavaScript MCP server with
// `jose`: the README's snippet, run by ../dpop-jwt.test.mjs against a live `mcpauth serve`.
import { createRemoteJWKSet, jwtVerify } from "jose";

/** A verifier for the tokens `issuer` issues for `resource` (e.g. https://auth.example.com/api/mcp). */
export function accessTokenVerifier(issuer, resource) {
  const keys = fetch(`${issuer}/.well-known/oauth-authorization-server`)
    .then((response) => response.json())
    .then((metadata) => createRemoteJWKSet(new URL(metadata.jwks_uri)));
  return async (token) => {
    const { payload } = await jwtVerify(token, await keys, {
      issuer,
      audience: resource,
      typ: "at+jwt",
      algorithms: ["ES256", "RS256"],
    });
    // payload.sub, payload.client_id, payload.scope; payload.cnf?.jkt when the token is
    // DPoP-bound: then also check the request's DPoP proof (RFC 9449 §7.1).
    return payload;
  };
}
