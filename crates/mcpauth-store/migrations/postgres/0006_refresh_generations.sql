-- Refresh-token generations for the tolerated reuse of the previous token (SECURITY S12): a
-- token's generation is one more than the token it was exchanged for; the family records its
-- head generation and when it last advanced. Tokens rotated before this migration are put a
-- generation behind the unrotated ones, and families have no advance time yet, so reusing them
-- is never tolerated.
ALTER TABLE "oauthRefreshToken" ADD COLUMN generation BIGINT NOT NULL DEFAULT 0;
UPDATE "oauthRefreshToken" SET generation = -1 WHERE rotated_at IS NOT NULL;
ALTER TABLE "oauthTokenFamily" ADD COLUMN generation BIGINT NOT NULL DEFAULT 0;
ALTER TABLE "oauthTokenFamily" ADD COLUMN advanced_at BIGINT;

-- Clients that registered themselves (RFC 7591), which are purged after a day when they never
-- completed an authorization (SECURITY M5). Clients registered before this migration, and
-- clients from configuration or the CLI, are never purged.
ALTER TABLE "oauthApplication" ADD COLUMN registered_dynamically BOOLEAN NOT NULL DEFAULT FALSE;
