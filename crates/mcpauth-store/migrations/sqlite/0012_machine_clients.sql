-- Machine clients (issue 21): a client_credentials token acts for its client, not for a user, so
-- a token family and an access token may have no user (user_id NULL; the foreign key stays for
-- every row that has one). SQLite cannot drop a NOT NULL constraint, and rebuilding
-- "oauthTokenFamily" would cascade-delete every code and token that references it (foreign keys
-- are on, and cannot be switched off inside the migration's transaction). Dropping NOT NULL
-- changes nothing on disk, so it is done the way SQLite documents for such changes
-- (lang_altertable.html, "ALTER TABLE ... other kinds of changes"): the stored CREATE TABLE text
-- is edited in sqlite_schema; `writable_schema = RESET` ends the editing and makes this connection
-- reload the schema, and a throw-away table created and dropped moves the schema cookie, so that
-- every other connection reloads it too. Columns added to these tables by other migrations are
-- untouched: only the user_id clause is rewritten.
PRAGMA writable_schema = ON;
UPDATE sqlite_schema
   SET sql = replace(sql,
                     'user_id     TEXT    NOT NULL REFERENCES "user"',
                     'user_id     TEXT    REFERENCES "user"')
 WHERE type = 'table' AND name IN ('oauthTokenFamily', 'oauthAccessToken');
PRAGMA writable_schema = RESET;
CREATE TABLE "mcpauth_0012_schema_reload" (x INTEGER);
DROP TABLE "mcpauth_0012_schema_reload";
