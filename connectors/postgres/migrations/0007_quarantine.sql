-- Records a stage could neither decode nor write (connectors.postgres.quarantine): set aside with the reason, in
-- the transaction that stores the stage's offsets past them, so one bad record never stops a stage. An operator
-- lists them (`mmhub quarantine list`) and replays one once the cause is fixed (`mmhub quarantine replay ID`).
-- Runs with search_path set to the target schema: names stay unqualified.

CREATE TABLE quarantine (
    quarantine_id  bigserial PRIMARY KEY,
    stage          text NOT NULL CHECK (stage IN ('sink', 'share', 'webhooks')),
    consumer       text NOT NULL,
    topic          text NOT NULL,
    partition      integer NOT NULL,
    kafka_offset   bigint NOT NULL,
    kafka_timestamp bigint NOT NULL,
    -- the record as consumed, byte for byte (bytea: whatever it holds, Postgres takes it)
    key            bytea,
    value          bytea,
    reason         text NOT NULL,
    quarantined_at timestamptz NOT NULL DEFAULT now(),
    attempts       integer NOT NULL DEFAULT 0,
    replayed_at    timestamptz,
    -- a batch read again after a crash sets the record aside once
    UNIQUE (consumer, topic, partition, kafka_offset)
);
CREATE INDEX quarantine_waiting_idx ON quarantine (quarantine_id) WHERE replayed_at IS NULL;
