-- Exact Online connections: one per user and region.
-- Tokens are stored only sealed (AES-256-GCM, bound to row and column).
-- lease_* is the per-connection refresh lease shared by the cron and the
-- MCP server's on-demand refresh; retry_* is the token lifecycle state.

CREATE TABLE connections (
    id                     TEXT PRIMARY KEY,
    user_id                TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    region                 TEXT NOT NULL CHECK (region IN ('nl', 'be', 'de', 'uk', 'us', 'es', 'fr')),
    exact_user_id          TEXT,
    exact_user_name        TEXT,
    exact_email            TEXT,
    access_token_sealed    TEXT NOT NULL,
    refresh_token_sealed   TEXT NOT NULL,
    access_expires_at      INTEGER NOT NULL,
    refresh_expires_at     INTEGER NOT NULL,
    token_generation       INTEGER NOT NULL DEFAULT 1,
    status                 TEXT NOT NULL DEFAULT 'active'
                           CHECK (status IN ('active', 'retry_pending', 'refresh_failed')),
    retry_count            INTEGER NOT NULL DEFAULT 0 CHECK (retry_count >= 0),
    next_retry_at          INTEGER,
    last_error             TEXT,
    lease_owner            TEXT,
    lease_expires_at       INTEGER,
    last_refreshed_at      INTEGER,
    last_used_at           INTEGER,
    reconnect_notified_at  INTEGER,
    created_at             INTEGER NOT NULL,
    updated_at             INTEGER NOT NULL,
    UNIQUE (user_id, region),
    CHECK ((status = 'retry_pending') = (next_retry_at IS NOT NULL))
);

-- Cron: active connections whose access token expires within the window.
CREATE INDEX idx_connections_status_access ON connections (status, access_expires_at);
-- Cron: retry_pending connections whose retry time has come.
CREATE INDEX idx_connections_status_retry ON connections (status, next_retry_at);
-- Cron: quiet connections whose refresh token nears its 30-day end.
CREATE INDEX idx_connections_status_refresh ON connections (status, refresh_expires_at);
