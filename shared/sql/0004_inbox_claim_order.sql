-- The order in which events were claimed, and so applied: a consumer claims a batch's events in
-- the order it applies them. The fault suite replays a service's inputs in this order through
-- the pure domain and compares the final state (tests/reliability/model.py).
ALTER TABLE inbox ADD COLUMN claim_order bigserial;
