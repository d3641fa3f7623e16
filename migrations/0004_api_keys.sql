-- API keys: only the SHA-256 hash and a display prefix are stored.

CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          TEXT NOT NULL DEFAULT 'Default' CHECK (length(name) BETWEEN 1 AND 100),
    key_hash      TEXT NOT NULL UNIQUE CHECK (length(key_hash) = 64),
    key_prefix    TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER,
    revoked_at    INTEGER
);

CREATE INDEX idx_api_keys_user ON api_keys (user_id, revoked_at);
-- Housekeeping: revoked keys older than 30 days are purged.
CREATE INDEX idx_api_keys_revoked ON api_keys (revoked_at) WHERE revoked_at IS NOT NULL;
