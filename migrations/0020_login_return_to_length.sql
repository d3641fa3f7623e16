-- An assistant connecting through OAuth sends a signed-out browser to sign
-- in and back to its authorization request, whose query (a client id URL,
-- a redirect URI, `state`, the PKCE challenge, `resource`) can exceed the
-- 512 characters 0015 allowed for `return_to`. The limit becomes 4096
-- (`login_states::MAX_RETURN_TO`). Sign-in attempts live ten minutes and
-- nothing references the table, so it is rebuilt with its rows.

CREATE TABLE login_states_next (
    state_hash    TEXT PRIMARY KEY CHECK (length(state_hash) = 64),
    browser_hash  TEXT NOT NULL CHECK (length(browser_hash) = 64),
    region        TEXT NOT NULL CHECK (region IN ('nl', 'be', 'de', 'uk', 'us', 'es', 'fr')),
    -- Where to go after signing in: a same-origin path, checked before it is stored.
    return_to     TEXT CHECK (return_to IS NULL OR (substr(return_to, 1, 1) = '/' AND length(return_to) <= 4096)),
    -- The signed-in user who is adding or renewing a connection, if any.
    user_id       TEXT REFERENCES users (id) ON DELETE CASCADE,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
);

INSERT INTO login_states_next (state_hash, browser_hash, region, return_to, user_id, created_at, expires_at)
SELECT state_hash, browser_hash, region, return_to, user_id, created_at, expires_at FROM login_states;

DROP TABLE login_states;
ALTER TABLE login_states_next RENAME TO login_states;

CREATE INDEX idx_login_states_expires ON login_states (expires_at);
CREATE INDEX idx_login_states_user ON login_states (user_id) WHERE user_id IS NOT NULL;
