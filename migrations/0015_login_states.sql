-- The portal's "sign in with Exact Online" attempts: the OAuth `state`
-- sent to Exact, stored only as a hash, bound to the browser that started
-- the attempt (the hash of a short-lived cookie), single-use (taken with
-- DELETE … RETURNING) and expiring after ten minutes.

CREATE TABLE login_states (
    state_hash    TEXT PRIMARY KEY CHECK (length(state_hash) = 64),
    browser_hash  TEXT NOT NULL CHECK (length(browser_hash) = 64),
    region        TEXT NOT NULL CHECK (region IN ('nl', 'be', 'de', 'uk', 'us', 'es', 'fr')),
    -- Where to go after signing in: a same-origin path, checked before it is stored.
    return_to     TEXT CHECK (return_to IS NULL OR (substr(return_to, 1, 1) = '/' AND length(return_to) <= 512)),
    -- The signed-in user who is adding or renewing a connection, if any.
    user_id       TEXT REFERENCES users (id) ON DELETE CASCADE,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
);

-- Housekeeping: attempts never completed.
CREATE INDEX idx_login_states_expires ON login_states (expires_at);
-- Deleting a user removes their pending attempts without a scan.
CREATE INDEX idx_login_states_user ON login_states (user_id) WHERE user_id IS NOT NULL;
