-- The monthly carrier performance data set (mmhub dataset monthly / publish, connectors.gateway.datasets): each
-- month's release is cut, audited and kept here once, in one transaction; every later run reads it back and sends
-- that same document (only if it was not sent yet), so a restart never publishes a different release of a month.
CREATE TABLE dataset_monthly (
    month        text PRIMARY KEY CHECK (month ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
    document     jsonb NOT NULL,
    published_at timestamptz NOT NULL,
    sent_at      timestamptz
);
