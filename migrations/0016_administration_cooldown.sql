-- When a customer last switched an administration off: on a plan with an
-- administration limit it can be switched on again only an hour later, so
-- swapping administrations back and forth cannot stretch the limit.

ALTER TABLE administrations ADD COLUMN deactivated_at INTEGER;
