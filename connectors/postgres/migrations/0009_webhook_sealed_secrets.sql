-- Webhook secrets sealed at rest (connectors/webhooks/sealing.py): AES-256-GCM under the operator's key, the key's
-- id inside each sealed value, the subscription id as associated data.
-- SQL has no key: the clear-text secrets of older rows move to the legacy_clear_* columns here, and the first
-- webhooks process, gateway or `mmhub webhooks` command that starts with the key seals them and nulls those columns.
ALTER TABLE webhook_subscriptions ADD COLUMN secret_sealed bytea, ADD COLUMN previous_secret_sealed bytea;
ALTER TABLE webhook_subscriptions ALTER COLUMN secret DROP NOT NULL;
ALTER TABLE webhook_subscriptions RENAME COLUMN secret TO legacy_clear_secret;
ALTER TABLE webhook_subscriptions RENAME COLUMN previous_secret TO legacy_clear_previous_secret;
-- Every row written from now on carries its secret sealed and none in clear (NOT VALID: older rows only until sealed).
ALTER TABLE webhook_subscriptions ADD CONSTRAINT webhook_subscriptions_sealed
    CHECK (secret_sealed IS NOT NULL AND legacy_clear_secret IS NULL AND legacy_clear_previous_secret IS NULL) NOT VALID;
