-- Metering. usage_counters is the atomic per-user monthly counter of MCP
-- tools/call requests that plan enforcement reads; api_usage keeps one row
-- per call for the dashboard; usage_rollups keeps monthly totals after
-- api_usage rows pass the retention window. auth_kind records how the call
-- was authenticated instead of abusing a foreign key.

CREATE TABLE usage_counters (
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    month       TEXT NOT NULL CHECK (month GLOB '[0-9][0-9][0-9][0-9]-[0-1][0-9]'),
    tool_calls  INTEGER NOT NULL DEFAULT 0 CHECK (tool_calls >= 0),
    PRIMARY KEY (user_id, month)
) WITHOUT ROWID;

CREATE TABLE api_usage (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    auth_kind       TEXT NOT NULL CHECK (auth_kind IN ('api_key', 'oauth')),
    api_key_id      TEXT REFERENCES api_keys (id) ON DELETE SET NULL,
    oauth_client_id TEXT REFERENCES oauth_clients (client_id) ON DELETE SET NULL,
    tool            TEXT NOT NULL,
    division_code   INTEGER,
    outcome         TEXT NOT NULL
                    CHECK (outcome IN ('ok', 'tool_error', 'invalid_arguments', 'limit_exceeded',
                                       'forbidden', 'upstream_error', 'internal_error')),
    latency_ms      INTEGER NOT NULL CHECK (latency_ms >= 0),
    exact_calls     INTEGER NOT NULL DEFAULT 0,
    request_id      TEXT,
    client_name     TEXT,
    at              INTEGER NOT NULL
);

CREATE INDEX idx_api_usage_user_at ON api_usage (user_id, at);
CREATE INDEX idx_api_usage_at ON api_usage (at);

CREATE TABLE usage_rollups (
    user_id           TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    month             TEXT NOT NULL,
    tool              TEXT NOT NULL,
    calls             INTEGER NOT NULL,
    errors            INTEGER NOT NULL,
    total_latency_ms  INTEGER NOT NULL,
    PRIMARY KEY (user_id, month, tool)
) WITHOUT ROWID;
