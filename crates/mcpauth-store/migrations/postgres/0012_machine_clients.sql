-- Machine clients (issue 21): a client_credentials token acts for its client, not for a user, so
-- a token family and an access token may have no user (user_id NULL; the foreign key stays for
-- every row that has one).
ALTER TABLE "oauthTokenFamily" ALTER COLUMN user_id DROP NOT NULL;
ALTER TABLE "oauthAccessToken" ALTER COLUMN user_id DROP NOT NULL;
