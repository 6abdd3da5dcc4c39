-- The console's sign-in sessions (central/console/, docs/console.md). The cookie holds a random token;
-- only its SHA-256 is stored. Revoking the key deletes its sessions (central/auth/repository.py), and a
-- deleted key takes them with it.
CREATE TABLE console_sessions (
    id_hash     bytea PRIMARY KEY CHECK (octet_length(id_hash) = 32),
    key_prefix  text NOT NULL REFERENCES api_keys (prefix) ON DELETE CASCADE,
    csrf        text NOT NULL CHECK (length(csrf) BETWEEN 32 AND 128),
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL CHECK (expires_at > created_at)
);
CREATE INDEX console_sessions_key ON console_sessions (key_prefix);
CREATE INDEX console_sessions_expires ON console_sessions (expires_at);
