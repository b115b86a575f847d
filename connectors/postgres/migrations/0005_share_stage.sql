-- The Kafka share stage (connectors/sharing/stage.py): what it has shared so far, and the audit rows it still has
-- to publish to hub.audit. Its consumed offsets live in sink_offsets under its own consumer group.
-- Runs with search_path set to the target schema: names stay unqualified.

-- The newest record version whose views went out, per shipment: an older or repeated version is not shared again.
CREATE TABLE share_versions (
    shipment_id text PRIMARY KEY,
    version     bigint NOT NULL,
    shared_at   timestamptz NOT NULL DEFAULT now()
);

-- Per party and claim, the digest of the claim as that party last received it: a claim goes out again only
-- when what the party would see of it changed.
CREATE TABLE share_claims (
    party          text NOT NULL,
    claim_id       text NOT NULL,
    shipment_id    text NOT NULL,
    record_version bigint NOT NULL,
    digest         text NOT NULL,
    PRIMARY KEY (party, claim_id)
);
CREATE INDEX share_claims_shipment_idx ON share_claims (shipment_id);

-- Outbox: audit rows written with the shares but not yet on hub.audit. Filled in the transaction that writes
-- share_audit, emptied once Kafka acknowledges, so a crash in between publishes them on restart instead of never.
CREATE TABLE share_audit_outbox (
    seq      bigserial PRIMARY KEY,
    share_id text NOT NULL UNIQUE REFERENCES share_audit (share_id),
    party    text NOT NULL,
    document text NOT NULL
);
