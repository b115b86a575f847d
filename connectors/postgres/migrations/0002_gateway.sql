-- The HTTP gateway's receipts: every event copy it has published to Kafka, so a carrier's retry of the same copy
-- is answered as a duplicate. A copy is (source, event_id, fingerprint): a revision is a new fingerprint, so a new
-- row. Written only after Kafka acknowledged the copy (see connectors.gateway.app).
-- Runs with search_path set to the target schema: names stay unqualified.

CREATE TABLE gateway_receipts (
    source      text NOT NULL,
    event_id    text NOT NULL,
    fingerprint text NOT NULL,
    received_at timestamptz NOT NULL,
    request_id  uuid NOT NULL,
    routed_to   text NOT NULL CHECK (routed_to IN ('shipment', 'reference_resolution')),
    PRIMARY KEY (source, event_id, fingerprint)
);
CREATE INDEX gateway_receipts_request_idx ON gateway_receipts (request_id);
