-- Operator incidents: what the token cron found wrong (a failed or
-- skipped run, the refresh breaker, a refresh failure rate, a server
-- error rate, a schema that is not the code's). One row per incident, at
-- most one open per kind; the mails that say it opened and resolved are
-- queued in the same batch as the row's change.

CREATE TABLE incidents (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    kind         TEXT NOT NULL CHECK (kind IN (
                     'cron_run_failed', 'cron_run_skipped', 'refresh_breaker',
                     'refresh_failure_rate', 'server_error_rate', 'health_regression')),
    opened_at    INTEGER NOT NULL,
    last_seen    INTEGER NOT NULL,
    resolved_at  INTEGER,
    details      TEXT NOT NULL
);

-- One open incident per kind: a second open of the same kind fails.
CREATE UNIQUE INDEX idx_incidents_open ON incidents (kind) WHERE resolved_at IS NULL;
CREATE INDEX idx_incidents_resolved ON incidents (resolved_at) WHERE resolved_at IS NOT NULL;

-- The alert check counts the last interval's error rows by time.
CREATE INDEX idx_error_log_service_at ON error_log (service, at);
