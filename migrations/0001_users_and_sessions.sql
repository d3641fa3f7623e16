-- Users and portal sessions.
-- Timestamps are INTEGER Unix seconds written by the application's clock.
-- The plan CHECK lists exactly boekhouding_core::plan::Plan::ALL.

CREATE TABLE users (
    id                          TEXT PRIMARY KEY,
    email                       TEXT NOT NULL COLLATE NOCASE UNIQUE,
    name                        TEXT,
    plan                        TEXT NOT NULL DEFAULT 'free'
                                CHECK (plan IN ('free', 'starter', 'pro', 'enterprise')),
    status                      TEXT NOT NULL DEFAULT 'active'
                                CHECK (status IN ('active', 'suspended', 'deleted')),
    locale                      TEXT NOT NULL DEFAULT 'nl' CHECK (locale IN ('nl', 'en')),
    stripe_customer_id          TEXT UNIQUE,
    stripe_subscription_id      TEXT,
    stripe_subscription_status  TEXT,
    stripe_cancel_at_period_end INTEGER NOT NULL DEFAULT 0
                                CHECK (stripe_cancel_at_period_end IN (0, 1)),
    email_product_updates       INTEGER NOT NULL DEFAULT 1 CHECK (email_product_updates IN (0, 1)),
    email_usage_warnings        INTEGER NOT NULL DEFAULT 1 CHECK (email_usage_warnings IN (0, 1)),
    tos_accepted_version        TEXT,
    tos_accepted_at             INTEGER,
    usage_warning_sent_month    TEXT,
    created_at                  INTEGER NOT NULL,
    updated_at                  INTEGER NOT NULL
);

CREATE TABLE sessions (
    token_hash   TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    last_seen_at INTEGER,
    user_agent   TEXT
);

CREATE INDEX idx_sessions_user ON sessions (user_id);
CREATE INDEX idx_sessions_expires ON sessions (expires_at);
