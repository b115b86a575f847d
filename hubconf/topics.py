"""The hub's Kafka topics: names and settings, in one place for the worker, the sink, the CLI and compose.

A namespace prefixes every name, so tests and parallel deployments can share one cluster without meeting.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

EVENTS = "hub.events"
EVENTS_DLQ = "hub.events.dlq"
SHIPMENT_STATUS = "hub.shipment.status"
SETTLEMENT = "hub.settlement"
CLAIMS = "hub.claims"
# The electronic cargo release at destination, keyed by shipment id, for the terminal or the delivering carrier.
RELEASE = "hub.release"
# Controlled sharing: each party's view of a shipment, on one topic per audience (shipper, insurer, consignee,
# carrier, delegate) and party, `hub.share.<audience>.<party>`, so that a party's read grant (one LITERAL ACL per
# topic) covers no one else's views; and the audit log of every share, keyed by party.
SHARE_AUDIENCES = ("shipper", "insurer", "consignee", "carrier", "delegate", "bank")
SHARE = "hub.share"
# One party's views need no parallelism and keep their order on one partition.
SHARE_PARTITIONS = 1
SHARE_CONFIG = {"cleanup.policy": "delete", "retention.ms": str(30 * 24 * 3600 * 1000)}
# A party's consumer groups start with `<ns>.party.<party>:` (':' is not in a party id, so the prefix is exact).
PARTY_GROUPS = "party"
AUDIT = "hub.audit"
# The carrier performance data set's monthly release (the k/m cells of a closed month), keyed by month (YYYY-MM);
# compacted, so it holds the latest release of each month (`mmhub dataset publish`).
DATASETS_PERFORMANCE = "hub.datasets.performance"
# Reference resolution: keyed by carrier reference ("container:MSKU9070323"), so the reference book and the events
# waiting on a reference meet on one partition (see streams.references).
REFERENCES = "hub.references"
# Per reference: the events parked on it (count, oldest, keys), or an empty value once none wait. Compacted, so
# reading it to the end shows what waits now (`mmhub parked`).
PARKED = "hub.references.parked"
# What a carrier sends, untouched, one topic per format; the connector stage parses it into hub.events.
RAW_FORMATS = ("canonical", "dcsa", "edifact", "onerecord", "epcis", "ubl")

# Headers on every dead-lettered message; the value stays the original bytes, untouched.
DLQ_REASON = "mmhub.reason"
# A reason quotes what it refuses (a field name, a source), and a sender chooses those: a 4 MiB payload of three events
# with a 1.3 MB field name each made 3.9 MB of reasons, a dead letter past what the DLQ topic takes. The header keeps
# the first REASON_HEADER_BYTES of it.
REASON_HEADER_BYTES = 4096
DLQ_CODE = "mmhub.code"
DLQ_SOURCE_TOPIC = "mmhub.source.topic"
DLQ_SOURCE_PARTITION = "mmhub.source.partition"
DLQ_SOURCE_OFFSET = "mmhub.source.offset"
# On an event refused after it was taken in (source topic "mmhub.state"): the message whose arrival refused it.
DLQ_TRIGGERED_BY = "mmhub.triggered-by"
# On a dead letter of an unauthenticated request, whose value is only the body's first UNAUTHENTICATED_KEPT_BYTES:
# the whole body's SHA-256 (hex) and size in bytes. Nobody vouches for such a body, so it is not kept whole.
DLQ_BODY_SHA256 = "mmhub.body.sha256"
DLQ_BODY_SIZE = "mmhub.body.size"
UNAUTHENTICATED_KEPT_BYTES = 1024
# Where an event came from before the connector stage turned it into a canonical event (topic[partition]@offset
# of the raw message, or "http:<receipt>"), carried on hub.events and hub.references and kept on dead letters.
ORIGIN = "mmhub.origin"
# The carrier's signature over the exact bytes of a raw message (see connectors.carriers).
SIGNATURE_CARRIER = "mmhub.carrier"
SIGNATURE_KEY_ID = "mmhub.key-id"
SIGNATURE = "mmhub.signature"


# The worker's tables. Their changelog topics are created with the hub's topics, before any worker starts: a
# changelog topic that faust creates itself can sit in the consumer group's metadata with 0 partitions until the
# next rebalance, and the first table write then fails faust's partition check.
TABLES = ("shipments", "deadlines", "references")
CHANGELOG_CONFIG = {"cleanup.policy": "compact"}


def raw_topic(format_name: str) -> str:
    return f"carrier.{format_name}.raw"

# A dead letter holds a whole rejected payload (up to 4 MiB from the HTTP gateway or a raw topic) plus its headers:
# more than the broker's default message size (1 MiB), so the DLQ topic allows this much per message.
DLQ_MAX_MESSAGE_BYTES = 5 * 1024 * 1024
# The largest carrier payload: the largest any format's parser accepts.
MAX_RAW_BYTES = 4 * 1024 * 1024
# Room for the signature headers and the record batch around a raw payload.
RAW_REQUEST_OVERHEAD = 64 * 1024
# What a raw topic takes per message. Well under the DLQ's: whatever a raw topic takes, its dead letter (the same
# bytes with the reason, at most REASON_HEADER_BYTES, and where it came from) is a message the DLQ takes. Were they
# equal, a carrier's record of just under 5 MiB would make a dead letter the broker refuses, and the connector stage
# would retry that checkpoint for ever.
RAW_MAX_MESSAGE_BYTES = MAX_RAW_BYTES + RAW_REQUEST_OVERHEAD
# The topic-level settings ensure_topics holds existing topics to, not only the ones it creates: the time of
# receipt (streams.horizon), and the sizes above.
ENFORCED_SETTINGS = ("message.timestamp.type", "max.message.bytes")
# The largest message the merge writes to a topic of the broker's default max.message.bytes (1,048,588: the status,
# settlement, claims and release topics and the shipments' changelog). A version that would be larger is set aside
# (worker.stages.MergeHandler): the broker would refuse it, and the checkpoint holding it would fail at every retry.
MAX_OUTPUT_BYTES = 1_000_000

STATUS_COMPACTION_LAG_MS = 7 * 24 * 3600 * 1000

# On the topics events come in by, the broker stamps each record with its own clock: that is the hub's time of
# receipt (streams.horizon), which a producer cannot set and a replay reads back unchanged.
RECEIPT_TIME = {"message.timestamp.type": "LogAppendTime"}

# Per topic: cleanup policy and retention. Status is compacted: it holds each shipment's latest version.
TOPIC_CONFIGS: dict[str, dict[str, str]] = {
    EVENTS: {"cleanup.policy": "delete", "retention.ms": str(30 * 24 * 3600 * 1000), **RECEIPT_TIME},
    EVENTS_DLQ: {
        "cleanup.policy": "delete",
        "retention.ms": str(90 * 24 * 3600 * 1000),
        "max.message.bytes": str(DLQ_MAX_MESSAGE_BYTES),
    },
    # A version's `applied` copies exist only in its own message: compaction must wait longer than any outage of
    # a consumer that keeps them (the Postgres sink's shipment_events), or those rows are never written.
    SHIPMENT_STATUS: {"cleanup.policy": "compact", "min.compaction.lag.ms": str(STATUS_COMPACTION_LAG_MS)},
    # Invoices, notes, payouts and claims are documents with a history: kept a year, never compacted away.
    SETTLEMENT: {"cleanup.policy": "delete", "retention.ms": str(365 * 24 * 3600 * 1000)},
    CLAIMS: {"cleanup.policy": "delete", "retention.ms": str(365 * 24 * 3600 * 1000)},
    RELEASE: {"cleanup.policy": "delete", "retention.ms": str(365 * 24 * 3600 * 1000)},
    # Registrations and parked events must outlive any wait for a booking: the tables' changelogs hold the state,
    # this topic only carries requests, so a month is plenty.
    REFERENCES: {"cleanup.policy": "delete", "retention.ms": str(30 * 24 * 3600 * 1000)},
    PARKED: {"cleanup.policy": "compact", "min.compaction.lag.ms": str(60 * 1000)},
    AUDIT: {"cleanup.policy": "delete", "retention.ms": str(400 * 24 * 3600 * 1000)},
    DATASETS_PERFORMANCE: {"cleanup.policy": "compact"},
    # a raw payload may be a whole EDI interchange or a batch of events (up to 4 MiB, see connectors.kafka)
    **{
        raw_topic(name): {
            "cleanup.policy": "delete",
            "retention.ms": str(30 * 24 * 3600 * 1000),
            "max.message.bytes": str(RAW_MAX_MESSAGE_BYTES),
            # The broker stamps each record as it appends it: the time of receipt, against which the signature's
            # replay window and the future-date horizon are measured, cannot be backdated by a producer.
            **RECEIPT_TIME,
        }
        for name in RAW_FORMATS
    },
}


@dataclass(frozen=True)
class Topics:
    namespace: str = ""

    def name(self, base: str) -> str:
        return f"{self.namespace}.{base}" if self.namespace else base

    @property
    def events(self) -> str:
        return self.name(EVENTS)

    @property
    def dlq(self) -> str:
        return self.name(EVENTS_DLQ)

    @property
    def status(self) -> str:
        return self.name(SHIPMENT_STATUS)

    @property
    def settlement(self) -> str:
        return self.name(SETTLEMENT)

    @property
    def claims(self) -> str:
        return self.name(CLAIMS)

    @property
    def release(self) -> str:
        return self.name(RELEASE)

    @property
    def references(self) -> str:
        return self.name(REFERENCES)

    @property
    def audit(self) -> str:
        return self.name(AUDIT)

    @property
    def datasets_performance(self) -> str:
        return self.name(DATASETS_PERFORMANCE)

    def share(self, audience: str, party: str) -> str:
        """The topic of one party's views as `audience` (the party id is a valid topic name part: schemas.PartyId)."""
        if audience not in SHARE_AUDIENCES:
            raise ValueError(f"unknown audience {audience!r}; known: {', '.join(SHARE_AUDIENCES)}")
        return self.name(f"{SHARE}.{audience}.{party}")

    @property
    def share_prefix(self) -> str:
        """What every share topic's name starts with (and no other hub topic's)."""
        return self.name(f"{SHARE}.")

    def party_share_topics(self, party: str) -> list[str]:
        """A party's share topics, one per audience it may be in."""
        return [self.share(audience, party) for audience in SHARE_AUDIENCES]

    def party_groups(self, party: str) -> str:
        """The prefix of the consumer groups a party may use."""
        return self.name(f"{PARTY_GROUPS}.{party}:")

    @property
    def parked(self) -> str:
        return self.name(PARKED)

    def raw(self, format_name: str) -> str:
        if format_name not in RAW_FORMATS:
            raise ValueError(f"unknown format {format_name!r}; known: {', '.join(RAW_FORMATS)}")
        return self.name(raw_topic(format_name))

    def all(self) -> dict[str, dict[str, str]]:
        """Every hub topic with its config, by its namespaced name."""
        return {self.name(base): config for base, config in TOPIC_CONFIGS.items()}


def reason_header(reason: str) -> bytes:
    """A reason as a dead letter's header: UTF-8 (a lone surrogate it quotes escaped, so never an error), at most
    REASON_HEADER_BYTES, cut at a character and saying how long it was."""
    raw = reason.encode("utf-8", "backslashreplace")
    if len(raw) <= REASON_HEADER_BYTES:
        return raw
    kept = raw[: REASON_HEADER_BYTES - 64].decode("utf-8", "ignore").encode("utf-8")
    return kept + f" ... (cut: {len(raw)} bytes in all)".encode()


# A dead letter keeps a refused record's bytes whole up to this much (room left for its headers). A raw record may
# come compressed, and the broker checks the compressed batch against max.message.bytes: a value it took may be far
# larger than the DLQ takes. Past this the dead letter keeps the first DLQ_CUT_BYTES of the value (and of the key),
# with the whole value's SHA-256 and size, as the gateway does for a body nobody signed.
DLQ_WHOLE_BYTES = DLQ_MAX_MESSAGE_BYTES - 64 * 1024
DLQ_CUT_BYTES = 1024


def dead_letter_bytes(key: bytes | None, value: bytes | None) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]:
    """The key and value a dead letter of this record keeps, and the headers that say what was cut (none if nothing)."""
    if len(key or b"") + len(value or b"") <= DLQ_WHOLE_BYTES:
        return key, value, []
    whole = value or b""
    return (key[:DLQ_CUT_BYTES] if key is not None else None), whole[:DLQ_CUT_BYTES], body_digest(whole)


def body_digest(body: bytes) -> list[tuple[str, bytes]]:
    """The headers that stand for a body a dead letter does not keep whole: its SHA-256 and its size."""
    return [(DLQ_BODY_SHA256, hashlib.sha256(body).hexdigest().encode()), (DLQ_BODY_SIZE, str(len(body)).encode())]
