-- The share audit as a hash chain (streams/audit_chain.py): each row's row_hash covers its content and the
-- previous row's hash, so a row deleted, edited or moved with the application's own role shows to
-- `mmhub audit verify`, which also compares the rows with their copies on hub.audit.
-- Runs with search_path set to the target schema: names stay unqualified.
ALTER TABLE share_audit ADD COLUMN seq bigint UNIQUE;
ALTER TABLE share_audit ADD COLUMN prev_hash text;
ALTER TABLE share_audit ADD COLUMN row_hash text;
ALTER TABLE share_audit ADD CONSTRAINT share_audit_chained CHECK (
    (seq IS NULL AND prev_hash IS NULL AND row_hash IS NULL)
    OR (seq > 0 AND prev_hash ~ '^[0-9a-f]{64}$' AND row_hash ~ '^[0-9a-f]{64}$')
);

-- The chain's head: the last row's place and hash. Every writer locks it (SELECT ... FOR UPDATE) in the
-- transaction that appends, so concurrent writers (share stage, webhook dispatcher, gateway) take turns. The
-- chain starts at the genesis hash, 64 zeros.
CREATE TABLE share_audit_chain (
    id       integer PRIMARY KEY CHECK (id = 1),
    seq      bigint NOT NULL,
    row_hash text NOT NULL
);
INSERT INTO share_audit_chain (id, seq, row_hash) VALUES (1, 0, repeat('0', 64));

-- Rows audited before this migration get their place in the chain from the first append after it, oldest first
-- (connectors/sharing/chain.py); this index finds them.
CREATE INDEX share_audit_unchained_idx ON share_audit (shared_at, share_id) WHERE seq IS NULL;
