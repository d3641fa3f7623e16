-- The OAuth 2.1 authorization server for MCP clients, as its code uses it.
-- 0005 created oauth_auth_codes and oauth_tokens, but no code ever wrote
-- them, so they are rebuilt here around a grant. oauth_clients is kept and
-- extended instead of rebuilt: api_usage.oauth_client_id references it, and
-- dropping a referenced table in a migration is where D1's always-on
-- foreign keys bite.
--
-- A grant is what a user approved on the consent page: one client, one
-- resource, a scope and the administrations it may read. Codes and token
-- pairs hang off their grant, so revoking a grant (or deleting the user)
-- removes them all. Codes and tokens are stored only as SHA-256 hashes.

DROP TABLE oauth_tokens;
DROP TABLE oauth_auth_codes;

-- Clients registered through RFC 7591 ('registered') or known from their
-- Client ID Metadata Document ('metadata_document', client_id = its URL).
ALTER TABLE oauth_clients ADD COLUMN kind TEXT NOT NULL DEFAULT 'registered'
    CHECK (kind IN ('registered', 'metadata_document'));
ALTER TABLE oauth_clients ADD COLUMN application_type TEXT NOT NULL DEFAULT 'web'
    CHECK (application_type IN ('web', 'native'));
-- When a metadata document must be fetched again (its Cache-Control,
-- bounded); NULL for registered clients.
ALTER TABLE oauth_clients ADD COLUMN refresh_after INTEGER;

-- Clients nobody uses are collected by last use.
CREATE INDEX idx_oauth_clients_last_used ON oauth_clients (last_used_at);

CREATE TABLE oauth_grants (
    id                  TEXT PRIMARY KEY,
    client_id           TEXT NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    user_id             TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    resource            TEXT NOT NULL,
    scope               TEXT NOT NULL,
    -- The administration ids the user chose (a JSON array of
    -- administrations.id); the resource server intersects them with the
    -- user's active administrations on every call.
    administration_ids  TEXT NOT NULL CHECK (json_valid(administration_ids)),
    created_at          INTEGER NOT NULL,
    -- Set by the first code exchange; a grant without it is a consent whose
    -- code was never redeemed.
    activated_at        INTEGER,
    last_used_at        INTEGER NOT NULL,
    revoked_at          INTEGER
);

CREATE INDEX idx_oauth_grants_user ON oauth_grants (user_id);
CREATE INDEX idx_oauth_grants_client ON oauth_grants (client_id);
CREATE INDEX idx_oauth_grants_last_used ON oauth_grants (last_used_at);
CREATE INDEX idx_oauth_grants_revoked ON oauth_grants (revoked_at)
    WHERE revoked_at IS NOT NULL;

-- Single use: every redemption attempt increments uses in one statement,
-- so exactly one attempt sees 1; a later one is a replay.
CREATE TABLE oauth_auth_codes (
    code_hash       TEXT PRIMARY KEY,
    grant_id        TEXT NOT NULL REFERENCES oauth_grants (id) ON DELETE CASCADE,
    client_id       TEXT NOT NULL,
    -- The redirect_uri the authorization request carried (NULL when it
    -- named none and the client has exactly one).
    redirect_uri    TEXT,
    resource        TEXT NOT NULL,
    scope           TEXT NOT NULL,
    code_challenge  TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    uses            INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX idx_oauth_auth_codes_expires ON oauth_auth_codes (expires_at);
CREATE INDEX idx_oauth_auth_codes_grant ON oauth_auth_codes (grant_id);

-- One row per issued token pair. A refresh attempt increments
-- refresh_uses in one conditional statement: 1 rotates, 2 within the
-- grace is the one tolerated replay, anything else revokes the grant.
-- Spent rows stay until their refresh expiry so reuse is recognised.
CREATE TABLE oauth_tokens (
    id                  TEXT PRIMARY KEY,
    grant_id            TEXT NOT NULL REFERENCES oauth_grants (id) ON DELETE CASCADE,
    access_hash         TEXT NOT NULL UNIQUE,
    access_expires_at   INTEGER NOT NULL,
    refresh_hash        TEXT NOT NULL UNIQUE,
    refresh_expires_at  INTEGER NOT NULL,
    refresh_uses        INTEGER NOT NULL DEFAULT 0,
    refreshed_at        INTEGER,
    created_at          INTEGER NOT NULL
);

CREATE INDEX idx_oauth_tokens_grant ON oauth_tokens (grant_id);
CREATE INDEX idx_oauth_tokens_expiry ON oauth_tokens (refresh_expires_at);
