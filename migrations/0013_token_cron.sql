-- What the token cron needs beyond the first schema: a marker for the
-- "your refresh token is about to lapse" warning (the refresh_expires_at it
-- warned about, so one warning per token), indexes that keep every due
-- selection and purge an index search, and per-run cost counters.

ALTER TABLE connections ADD COLUMN lapse_warned_for INTEGER;

-- refresh_failed connections whose user has not been told yet.
CREATE INDEX idx_connections_unnotified ON connections (updated_at)
    WHERE status = 'refresh_failed' AND reconnect_notified_at IS NULL;

-- Access-only OAuth tokens (no refresh token) are purged by access expiry.
CREATE INDEX idx_oauth_tokens_access_only ON oauth_tokens (access_expires_at)
    WHERE refresh_expires_at IS NULL;

ALTER TABLE cron_runs ADD COLUMN mode TEXT NOT NULL DEFAULT 'inline'
    CHECK (mode IN ('inline', 'enqueue', 'consume'));
ALTER TABLE cron_runs ADD COLUMN enqueued INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cron_runs ADD COLUMN emails_failed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cron_runs ADD COLUMN exact_calls INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cron_runs ADD COLUMN d1_queries INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cron_runs ADD COLUMN longest_wait_s INTEGER NOT NULL DEFAULT 0;

-- Deleting a revoked key (or an OAuth client) sets api_usage's reference
-- to NULL; without these indexes every such delete scanned all usage rows.
CREATE INDEX idx_api_usage_key ON api_usage (api_key_id);
CREATE INDEX idx_api_usage_client ON api_usage (oauth_client_id);
