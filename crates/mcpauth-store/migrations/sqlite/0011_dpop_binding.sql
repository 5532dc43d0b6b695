-- DPoP (RFC 9449): the JWK SHA-256 thumbprint (RFC 7638) of the key a token is bound to.
-- An access token with one is usable only with a proof signed by that key (§7); a refresh token
-- with one (issued to a public client, §5) refreshes only with such a proof. NULL: a bearer
-- token, as before.
ALTER TABLE "oauthAccessToken" ADD COLUMN dpop_jkt TEXT;
ALTER TABLE "oauthRefreshToken" ADD COLUMN dpop_jkt TEXT;
