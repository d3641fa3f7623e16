-- Operator settings, feature flags and terms-of-service acceptances.

CREATE TABLE system_settings (
    key         TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    description TEXT,
    updated_at  INTEGER NOT NULL,
    updated_by  TEXT
);

CREATE TABLE feature_flags (
    key          TEXT PRIMARY KEY,
    description  TEXT,
    enabled      INTEGER NOT NULL DEFAULT 0 CHECK (enabled IN (0, 1)),
    config       TEXT CHECK (config IS NULL OR json_valid(config)),
    updated_at   INTEGER NOT NULL,
    updated_by   TEXT
);

CREATE TABLE tos_acceptances (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    tos_version  TEXT NOT NULL,
    accepted_at  INTEGER NOT NULL,
    client_ip    TEXT,
    user_agent   TEXT
);

CREATE INDEX idx_tos_acceptances_user ON tos_acceptances (user_id);
