-- Exact administrations (divisions) of a connection: the one table for them.
-- Reconnecting upserts by (connection_id, division_code) and keeps is_active.

CREATE TABLE administrations (
    id             TEXT PRIMARY KEY,
    connection_id  TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    division_code  INTEGER NOT NULL CHECK (division_code > 0),
    name           TEXT NOT NULL,
    is_active      INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    is_default     INTEGER NOT NULL DEFAULT 0 CHECK (is_default IN (0, 1)),
    activated_at   INTEGER,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    UNIQUE (connection_id, division_code)
);

-- At most one default administration per connection.
CREATE UNIQUE INDEX idx_administrations_one_default
    ON administrations (connection_id) WHERE is_default = 1;
