"""Verifying mcpauth's JWT access tokens (RFC 9068) in a Python MCP server with PyJWT: the
README's snippet, run by ../dpop-jwt.test.mjs against a live `mcpauth serve`.

    python verify_access_token.py ISSUER RESOURCE TOKEN   # prints the claims, or exits 1
"""
import json
import sys
import urllib.request

import jwt  # PyJWT, with its "crypto" extra


def access_token_verifier(issuer, resource):
    """A verifier for the tokens `issuer` issues for `resource`."""
    metadata_url = f"{issuer}/.well-known/oauth-authorization-server"
    with urllib.request.urlopen(metadata_url) as response:
        keys = jwt.PyJWKClient(json.load(response)["jwks_uri"])

    def verify(token):
        if jwt.get_unverified_header(token).get("typ") != "at+jwt":
            raise jwt.InvalidTokenError("not an access token")
        key = keys.get_signing_key_from_jwt(token)
        # sub, client_id, scope; cnf.jkt when the token is DPoP-bound (check the proof too)
        return jwt.decode(
            token,
            key,
            algorithms=["ES256", "RS256"],
            audience=resource,
            issuer=issuer,
            options={"require": ["exp", "iat", "sub", "jti", "client_id"]},
        )

    return verify


if __name__ == "__main__":
    verify = access_token_verifier(sys.argv[1], sys.argv[2])
    try:
        print(json.dumps(verify(sys.argv[3])))
    except jwt.PyJWTError as error:
        print(f"refused: {error}")
        sys.exit(1)
