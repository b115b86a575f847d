"""The hub's Kafka topics: names and settings, in one place for the worker, the sink, the CLI and compose.

A namespace prefixes every name, so tests and parallel deployments can share one cluster without meeting.
"""

from __future__ import annotations

from dataclasses import dataclass

EVENTS = "hub.events"
EVENTS_DLQ = "hub.events.dlq"
SHIPMENT_STATUS = "hub.shipment.status"
SETTLEMENT = "hub.settlement"
CLAIMS = "hub.claims"

# Headers on every dead-lettered message; the value stays the original bytes, untouched.
DLQ_REASON = "mmhub.reason"
DLQ_CODE = "mmhub.code"
DLQ_SOURCE_TOPIC = "mmhub.source.topic"
DLQ_SOURCE_PARTITION = "mmhub.source.partition"
DLQ_SOURCE_OFFSET = "mmhub.source.offset"

# Per topic: cleanup policy and retention. Status is compacted: it holds each shipment's latest version.
TOPIC_CONFIGS: dict[str, dict[str, str]] = {
    EVENTS: {"cleanup.policy": "delete", "retention.ms": str(30 * 24 * 3600 * 1000)},
    EVENTS_DLQ: {"cleanup.policy": "delete", "retention.ms": str(90 * 24 * 3600 * 1000)},
    SHIPMENT_STATUS: {"cleanup.policy": "compact", "min.compaction.lag.ms": str(3600 * 1000)},
    # Invoices, notes, payouts and claims are documents with a history: kept a year, never compacted away.
    SETTLEMENT: {"cleanup.policy": "delete", "retention.ms": str(365 * 24 * 3600 * 1000)},
    CLAIMS: {"cleanup.policy": "delete", "retention.ms": str(365 * 24 * 3600 * 1000)},
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

    def all(self) -> dict[str, dict[str, str]]:
        """Every hub topic with its config, by its namespaced name."""
        return {self.name(base): config for base, config in TOPIC_CONFIGS.items()}
