-- Data products (streams.datasets, connectors.gateway.datasets): each party's privacy budget (epsilon) and every
-- debit of it, and what each kind of release last published per cell (streams.datasets.Published: the shipment
-- set and the figures), so that a release that differs from the last by fewer than k shipments repeats it.
CREATE TABLE dataset_budget (
    party      text PRIMARY KEY,
    budget     double precision NOT NULL CHECK (budget >= 0),
    spent      double precision NOT NULL DEFAULT 0 CHECK (spent >= 0 AND spent <= budget + 1e-9),
    updated_at timestamptz NOT NULL
);
CREATE TABLE dataset_debits (
    release_id text PRIMARY KEY,
    party      text NOT NULL REFERENCES dataset_budget (party),
    dataset    text NOT NULL,
    purpose    text NOT NULL,
    epsilon    double precision NOT NULL CHECK (epsilon > 0),
    debited_at timestamptz NOT NULL
);
CREATE INDEX dataset_debits_party_idx ON dataset_debits (party, debited_at);
CREATE TABLE dataset_published (
    dataset      text NOT NULL,
    release_kind text NOT NULL,
    origin       text NOT NULL,
    destination  text NOT NULL,
    mode         integer NOT NULL,
    carrier      text NOT NULL,
    month        text NOT NULL,
    shipments    text[] NOT NULL,
    figures      jsonb NOT NULL,
    published_at timestamptz NOT NULL,
    PRIMARY KEY (dataset, release_kind, origin, destination, mode, carrier, month)
);
