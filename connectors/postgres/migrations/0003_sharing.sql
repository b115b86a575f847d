-- Controlled, metered sharing (streams/sharing.py): delegations, and the audit log of every share.
-- Runs with search_path set to the target schema: names stay unqualified.

-- A party entitled to a shipment lets a further party see some of its grades of it (ONE Record style delegation).
-- Never deleted: revoking sets revoked_at, so the audit can always say which grant allowed a share.
CREATE TABLE grants (
    grant_id    text PRIMARY KEY,
    shipment_id text NOT NULL,
    grantor     text NOT NULL,
    grantee     text NOT NULL,
    grades      text[] NOT NULL CHECK (cardinality(grades) > 0),
    granted_at  timestamptz NOT NULL,
    expires_at  timestamptz,
    revoked_at  timestamptz,
    CHECK (grantor <> grantee)
);
CREATE INDEX grants_shipment_idx ON grants (shipment_id);
CREATE INDEX grants_grantee_idx ON grants (grantee);

-- Every share: who got what of which shipment version, through which channel, allowed by which policy and grants.
-- share_id is deterministic (see streams.sharing.Share.share_id), so a replayed share is recorded once.
CREATE TABLE share_audit (
    share_id       text PRIMARY KEY,
    party          text NOT NULL,
    shipment_id    text NOT NULL,
    record_version integer,
    kind           text NOT NULL,
    channel        text NOT NULL CHECK (channel IN ('kafka', 'webhook', 'sse', 'api')),
    fields         text[] NOT NULL,
    policy_version text NOT NULL,
    relations      text[] NOT NULL,
    via_grants     text[] NOT NULL DEFAULT '{}',
    shared_at      timestamptz NOT NULL
);
CREATE INDEX share_audit_party_time_idx ON share_audit (party, shared_at);
CREATE INDEX share_audit_shipment_idx ON share_audit (shipment_id, shared_at);
