-- The operators who may use the console (SECURITY A1), besides those named by `admins` in the
-- configuration: granted with `mcpauth user admin --email …` and taken back with `--revoke`.
-- A row goes with its user.
CREATE TABLE "mcpauthAdmin" (
    user_id     TEXT     NOT NULL PRIMARY KEY REFERENCES "user" (id) ON DELETE CASCADE,
    granted_at  INTEGER NOT NULL
);
