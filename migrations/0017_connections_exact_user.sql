-- Signing in finds the account of an Exact login at one site by its Exact
-- user id (so a changed e-mail address at Exact keeps the account).

CREATE INDEX idx_connections_exact_user ON connections (region, exact_user_id);
