-- Outgoing e-mail, delivered by token-cron through a Resend-compatible API.
-- dedupe_key makes "once per incident" mails idempotent.

CREATE TABLE email_queue (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id          TEXT REFERENCES users (id) ON DELETE CASCADE,
    to_email         TEXT NOT NULL,
    template         TEXT NOT NULL,
    subject          TEXT NOT NULL,
    html             TEXT NOT NULL,
    text             TEXT NOT NULL,
    dedupe_key       TEXT UNIQUE,
    status           TEXT NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'sending', 'sent', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    last_error       TEXT,
    provider_id      TEXT,
    created_at       INTEGER NOT NULL,
    sent_at          INTEGER
);

CREATE INDEX idx_email_queue_due ON email_queue (status, next_attempt_at);
