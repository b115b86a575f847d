-- Webhooks (connectors/webhooks): parties' subscriptions and the outbox their notifications wait in.
-- Runs with search_path set to the target schema: names stay unqualified.
-- The filler's Kafka offsets live in sink_offsets (keyed by consumer group), written in the filler's transaction.

-- Never deleted: unsubscribing sets active = false, so the outbox and the audit keep their subscription.
CREATE TABLE webhook_subscriptions (
    subscription_id       text PRIMARY KEY,
    party                 text NOT NULL,
    url                   text NOT NULL,
    secret                text NOT NULL,
    -- After a rotation the old secret still signs (Notification-Signature-Previous) until previous_secret_until.
    previous_secret       text,
    previous_secret_until timestamptz,
    -- Filters: NULL matches everything.
    shipment_id           text,
    kinds                 text[] CHECK (kinds IS NULL OR cardinality(kinds) > 0),
    created_at            timestamptz NOT NULL,
    expires_at            timestamptz,
    active                boolean NOT NULL DEFAULT true,
    CHECK (expires_at IS NULL OR expires_at > created_at)
);
CREATE INDEX webhook_subscriptions_party_idx ON webhook_subscriptions (party) WHERE active;

-- One row per (subscription, share message): message_key is <party>/<shipment>/<version>/<kind>/<ref>, so a message
-- read twice is queued once. seq is the delivery order of a subscription's notifications.
CREATE TABLE webhook_outbox (
    seq             bigserial PRIMARY KEY,
    subscription_id text NOT NULL REFERENCES webhook_subscriptions (subscription_id),
    message_key     text NOT NULL,
    shipment_id     text NOT NULL,
    kind            text NOT NULL,
    payload         jsonb NOT NULL,
    state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    first_failed_at timestamptz,
    last_attempt_at timestamptz,
    last_error      text,
    created_at      timestamptz NOT NULL,
    delivered_at    timestamptz,
    UNIQUE (subscription_id, message_key),
    CHECK ((state = 'delivered') = (delivered_at IS NOT NULL))
);
-- The dispatcher reads each subscription's pending rows in seq order.
CREATE INDEX webhook_outbox_pending_idx ON webhook_outbox (subscription_id, seq) WHERE state = 'pending';
CREATE INDEX webhook_outbox_dead_idx ON webhook_outbox (subscription_id, seq) WHERE state = 'dead';
