-- A user may connect more than one Exact login at the same Exact site (the
-- owner's own login and the one of their bookkeeping office, say): a
-- connection is now one per user, site and Exact login, not one per user
-- and site. That an Exact login belongs to one account only is decided at
-- sign-in (`core::onboarding`): signing in with a known login opens the
-- account that holds it.
--
-- SQLite cannot drop a table constraint, so both tables are rebuilt.
-- Dropping `connections` while `administrations` still references it would
-- cascade: with foreign keys on (always, on D1) DROP TABLE first deletes
-- every row, and ON DELETE CASCADE empties the child. So the new tables are
-- built side by side, the old child is dropped before its parent, and the
-- new tables are renamed; the rename rewrites the new child's reference.

CREATE TABLE connections_next (
    id                     TEXT PRIMARY KEY,
    user_id                TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    region                 TEXT NOT NULL CHECK (region IN ('nl', 'be', 'de', 'uk', 'us', 'es', 'fr')),
    exact_user_id          TEXT,
    exact_user_name        TEXT,
    exact_email            TEXT,
    access_token_sealed    TEXT NOT NULL,
    refresh_token_sealed   TEXT NOT NULL,
    access_expires_at      INTEGER NOT NULL,
    refresh_expires_at     INTEGER NOT NULL,
    token_generation       INTEGER NOT NULL DEFAULT 1,
    status                 TEXT NOT NULL DEFAULT 'active'
                           CHECK (status IN ('active', 'retry_pending', 'refresh_failed')),
    retry_count            INTEGER NOT NULL DEFAULT 0 CHECK (retry_count >= 0),
    next_retry_at          INTEGER,
    last_error             TEXT,
    lease_owner            TEXT,
    lease_expires_at       INTEGER,
    last_refreshed_at      INTEGER,
    last_used_at           INTEGER,
    reconnect_notified_at  INTEGER,
    lapse_warned_for       INTEGER,
    created_at             INTEGER NOT NULL,
    updated_at             INTEGER NOT NULL,
    UNIQUE (user_id, region, exact_user_id),
    CHECK ((status = 'retry_pending') = (next_retry_at IS NOT NULL))
);

INSERT INTO connections_next (id, user_id, region, exact_user_id, exact_user_name, exact_email,
    access_token_sealed, refresh_token_sealed, access_expires_at, refresh_expires_at,
    token_generation, status, retry_count, next_retry_at, last_error, lease_owner,
    lease_expires_at, last_refreshed_at, last_used_at, reconnect_notified_at, lapse_warned_for,
    created_at, updated_at)
SELECT id, user_id, region, exact_user_id, exact_user_name, exact_email,
    access_token_sealed, refresh_token_sealed, access_expires_at, refresh_expires_at,
    token_generation, status, retry_count, next_retry_at, last_error, lease_owner,
    lease_expires_at, last_refreshed_at, last_used_at, reconnect_notified_at, lapse_warned_for,
    created_at, updated_at
FROM connections;

CREATE TABLE administrations_next (
    id             TEXT PRIMARY KEY,
    connection_id  TEXT NOT NULL REFERENCES connections_next (id) ON DELETE CASCADE,
    division_code  INTEGER NOT NULL CHECK (division_code > 0),
    name           TEXT NOT NULL,
    is_active      INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    is_default     INTEGER NOT NULL DEFAULT 0 CHECK (is_default IN (0, 1)),
    activated_at   INTEGER,
    deactivated_at INTEGER,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    UNIQUE (connection_id, division_code)
);

INSERT INTO administrations_next (id, connection_id, division_code, name, is_active, is_default,
    activated_at, deactivated_at, created_at, updated_at)
SELECT id, connection_id, division_code, name, is_active, is_default,
    activated_at, deactivated_at, created_at, updated_at
FROM administrations;

DROP TABLE administrations;
DROP TABLE connections;
ALTER TABLE connections_next RENAME TO connections;
ALTER TABLE administrations_next RENAME TO administrations;

-- The indexes of 0002, 0013 and 0017, recreated on the new table.
CREATE INDEX idx_connections_status_access ON connections (status, access_expires_at);
CREATE INDEX idx_connections_status_retry ON connections (status, next_retry_at);
CREATE INDEX idx_connections_status_refresh ON connections (status, refresh_expires_at);
CREATE INDEX idx_connections_unnotified ON connections (updated_at)
    WHERE status = 'refresh_failed' AND reconnect_notified_at IS NULL;
CREATE INDEX idx_connections_exact_user ON connections (region, exact_user_id);
CREATE INDEX idx_connections_user ON connections (user_id);

-- At most one default administration per connection (0003); that a user
-- has one default in all is kept by `administrations::set_default`.
CREATE UNIQUE INDEX idx_administrations_one_default
    ON administrations (connection_id) WHERE is_default = 1;
