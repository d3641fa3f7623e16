-- Operational logs: security events, admin audit trail, internal errors.
-- None of them ever holds a secret; details are JSON.

CREATE TABLE security_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    event_type  TEXT NOT NULL CHECK (event_type IN (
                    'invalid_api_key', 'invalid_oauth_token', 'rate_limit_exceeded',
                    'token_refresh_failed', 'refresh_token_reuse', 'forbidden_division',
                    'csrf_failure', 'auth_failure', 'suspicious_activity')),
    user_id     TEXT REFERENCES users (id) ON DELETE SET NULL,
    client_ip   TEXT,
    user_agent  TEXT,
    details     TEXT CHECK (details IS NULL OR json_valid(details)),
    at          INTEGER NOT NULL
);

CREATE INDEX idx_security_events_at ON security_events (at);
CREATE INDEX idx_security_events_user ON security_events (user_id, at);

CREATE TABLE audit_log (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    actor_id       TEXT REFERENCES users (id) ON DELETE SET NULL,
    actor_email    TEXT,
    action         TEXT NOT NULL,
    resource_type  TEXT NOT NULL,
    resource_id    TEXT,
    metadata       TEXT CHECK (metadata IS NULL OR json_valid(metadata)),
    client_ip      TEXT,
    at             INTEGER NOT NULL
);

CREATE INDEX idx_audit_log_at ON audit_log (at);
CREATE INDEX idx_audit_log_actor ON audit_log (actor_id, at);

CREATE TABLE error_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    service     TEXT NOT NULL CHECK (service IN ('mcp-server', 'auth-portal', 'token-cron')),
    kind        TEXT NOT NULL,
    message     TEXT NOT NULL,
    request_id  TEXT,
    user_id     TEXT REFERENCES users (id) ON DELETE SET NULL,
    details     TEXT CHECK (details IS NULL OR json_valid(details)),
    at          INTEGER NOT NULL
);

CREATE INDEX idx_error_log_at ON error_log (at);
