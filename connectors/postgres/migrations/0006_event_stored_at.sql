-- When the projection took in each event copy: lineage for a reader ("since when does the hub hold this?") and
-- the end of the publish -> Postgres latency that bench/latency.py measures. clock_timestamp(), not now(): a
-- batch is one transaction, and now() would give every row of it the transaction's start.
-- Rows from before this migration keep NULL: their time is not known.
-- Runs with search_path set to the target schema: names stay unqualified.
ALTER TABLE shipment_events ADD COLUMN stored_at timestamptz;
ALTER TABLE shipment_events ALTER COLUMN stored_at SET DEFAULT clock_timestamp();
