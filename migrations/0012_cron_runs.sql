-- One summary row per token-cron run, for health pages and alerting.

CREATE TABLE cron_runs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    cron         TEXT NOT NULL,
    started_at   INTEGER NOT NULL,
    finished_at  INTEGER,
    due          INTEGER NOT NULL DEFAULT 0,
    refreshed    INTEGER NOT NULL DEFAULT 0,
    retried      INTEGER NOT NULL DEFAULT 0,
    failed       INTEGER NOT NULL DEFAULT 0,
    skipped      INTEGER NOT NULL DEFAULT 0,
    emails_sent  INTEGER NOT NULL DEFAULT 0,
    purged       INTEGER NOT NULL DEFAULT 0,
    duration_ms  INTEGER,
    outcome      TEXT NOT NULL DEFAULT 'running' CHECK (outcome IN ('running', 'ok', 'partial', 'error')),
    notes        TEXT
);

CREATE INDEX idx_cron_runs_started ON cron_runs (started_at);
