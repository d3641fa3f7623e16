-- OAuth 2.1 authorization server for MCP clients. Codes and tokens are
-- stored only as SHA-256 hashes; a token family links rotated refresh
-- tokens so reuse of an old one revokes the whole family.

CREATE TABLE oauth_clients (
    client_id                   TEXT PRIMARY KEY,
    client_secret_hash          TEXT,
    client_name                 TEXT NOT NULL,
    redirect_uris               TEXT NOT NULL CHECK (json_valid(redirect_uris)),
    grant_types                 TEXT NOT NULL DEFAULT '["authorization_code","refresh_token"]'
                                CHECK (json_valid(grant_types)),
    token_endpoint_auth_method  TEXT NOT NULL DEFAULT 'none'
                                CHECK (token_endpoint_auth_method IN ('none', 'client_secret_basic', 'client_secret_post')),
    scope                       TEXT NOT NULL DEFAULT 'mcp:tools',
    registered_from             TEXT,
    created_at                  INTEGER NOT NULL,
    last_used_at                INTEGER
);

CREATE INDEX idx_oauth_clients_created ON oauth_clients (created_at);

CREATE TABLE oauth_auth_codes (
    code_hash              TEXT PRIMARY KEY,
    client_id              TEXT NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    user_id                TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    redirect_uri           TEXT NOT NULL,
    scope                  TEXT NOT NULL,
    resource               TEXT,
    code_challenge         TEXT NOT NULL,
    code_challenge_method  TEXT NOT NULL DEFAULT 'S256' CHECK (code_challenge_method = 'S256'),
    created_at             INTEGER NOT NULL,
    expires_at             INTEGER NOT NULL,
    used_at                INTEGER
);

CREATE INDEX idx_oauth_auth_codes_expires ON oauth_auth_codes (expires_at);

CREATE TABLE oauth_tokens (
    id                   TEXT PRIMARY KEY,
    family_id            TEXT NOT NULL,
    client_id            TEXT NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    user_id              TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    access_token_hash    TEXT NOT NULL UNIQUE,
    refresh_token_hash   TEXT UNIQUE,
    scope                TEXT NOT NULL,
    resource             TEXT,
    access_expires_at    INTEGER NOT NULL,
    refresh_expires_at   INTEGER,
    created_at           INTEGER NOT NULL,
    rotated_at           INTEGER,
    revoked_at           INTEGER
);

CREATE INDEX idx_oauth_tokens_family ON oauth_tokens (family_id);
CREATE INDEX idx_oauth_tokens_user ON oauth_tokens (user_id);
CREATE INDEX idx_oauth_tokens_expiry ON oauth_tokens (refresh_expires_at);
