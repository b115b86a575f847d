-- The Postgres projection of `hub.shipment.status`: each shipment's latest record, the event copies that built
-- it, and the Kafka position the projection has reached (the sink resumes from here, not from Kafka's commits).
-- Runs with search_path set to the target schema: names stay unqualified.

CREATE TABLE shipments (
    shipment_id  text PRIMARY KEY,
    status       text NOT NULL,
    shipper      text,
    mto          text,
    version      bigint NOT NULL,
    updated_at   timestamptz,
    projected_at timestamptz NOT NULL DEFAULT now(),
    record       jsonb NOT NULL
);
CREATE INDEX shipments_status_idx ON shipments (status);
CREATE INDEX shipments_shipper_idx ON shipments (shipper);
CREATE INDEX shipments_mto_idx ON shipments (mto);

-- Append-only: one row per distinct copy of an event (a revision or a retraction is a new fingerprint).
CREATE TABLE shipment_events (
    shipment_id    text NOT NULL,
    event_key      text NOT NULL,
    fingerprint    text NOT NULL,
    event_type     text NOT NULL,
    occurred_at    timestamptz NOT NULL,
    recorded_at    timestamptz NOT NULL,
    record_version bigint NOT NULL,
    event          jsonb NOT NULL,
    PRIMARY KEY (shipment_id, event_key, fingerprint)
);

CREATE TABLE sink_offsets (
    consumer    text NOT NULL,
    topic       text NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint NOT NULL,
    PRIMARY KEY (consumer, topic, partition)
);
