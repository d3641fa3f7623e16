-- The token cron's blast-radius breaker and key-rotation sweep: why a run
-- stopped refreshing early (NULL when it did not), and how many
-- connections it resealed from a retired encryption key.

ALTER TABLE cron_runs ADD COLUMN breaker TEXT;
ALTER TABLE cron_runs ADD COLUMN resealed INTEGER NOT NULL DEFAULT 0;
