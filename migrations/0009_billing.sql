-- Billing webhooks (Stripe-style). The provider's event id is the primary
-- key, so a replayed webhook is recognised and not applied twice.

CREATE TABLE billing_events (
    event_id      TEXT PRIMARY KEY,
    provider      TEXT NOT NULL CHECK (provider IN ('stripe', 'exact_app_store')),
    event_type    TEXT NOT NULL,
    user_id       TEXT REFERENCES users (id) ON DELETE SET NULL,
    plan_after    TEXT CHECK (plan_after IS NULL OR plan_after IN ('free', 'starter', 'pro', 'enterprise')),
    received_at   INTEGER NOT NULL,
    processed_at  INTEGER,
    outcome       TEXT
);

CREATE INDEX idx_billing_events_user ON billing_events (user_id, received_at);
