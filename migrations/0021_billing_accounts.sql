-- A user's Stripe side: the customer created once for them, and what
-- their subscription pays for. `users.plan` stays the plan in force (what
-- every request reads); this row says why, and what comes next: a
-- downgrade or cancellation waits for the end of the period already
-- paid for (`next_plan` at `changes_at`).

CREATE TABLE billing_accounts (
    user_id              TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    customer_id          TEXT NOT NULL UNIQUE,
    subscription_id      TEXT,
    status               TEXT,
    price_id             TEXT,
    paid_plan            TEXT CHECK (paid_plan IS NULL OR paid_plan IN ('starter', 'pro')),
    paid_until           INTEGER,
    next_plan            TEXT CHECK (next_plan IS NULL OR next_plan IN ('free', 'starter', 'pro')),
    changes_at           INTEGER,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    CHECK ((next_plan IS NULL) = (changes_at IS NULL))
);

-- The cron applies changes whose time has come.
CREATE INDEX idx_billing_accounts_changes ON billing_accounts (changes_at) WHERE changes_at IS NOT NULL;
