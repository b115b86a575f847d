"""The merge stage as the worker runs it, in memory, for the attacks on a shipment's state and versions."""

from __future__ import annotations

from typing import Any

import orjson

from hubconf.topics import Topics
from runtime.api import MemoryStore, Out, Record
from schemas.identifiers import gs1_check_digit
from streams.codec import read_state
from streams.horizon import Horizon
from streams.merge import ShipmentState
from worker.stages import Counters, DeadLetters, MergeHandler, WarmStates

from tests.unit.builders import AUTHORITY, RECEIVED_AT, SHIPMENT

TOPICS = Topics("sec")


def sscc(serial: int) -> str:
    body = f"0{serial:016d}"
    return body + gs1_check_digit(body)


class Merge:
    def __init__(self) -> None:
        self.counters = Counters()
        self.handler = MergeHandler(
            TOPICS, AUTHORITY, Horizon(), DeadLetters(TOPICS.dlq, self.counters), self.counters, False, WarmStates(),
            lambda: RECEIVED_AT,
        )
        self.stores = {"shipments": MemoryStore(), "deadlines": MemoryStore()}
        self.offset = -1

    def records(self, *docs: dict[str, Any]) -> list[Record]:
        out = []
        for doc in docs:
            self.offset += 1
            raw = orjson.dumps(doc)
            out.append(Record(TOPICS.events, 0, self.offset, str(doc["shipment_id"]).encode(), raw, (), int(RECEIVED_AT.timestamp() * 1000)))
        return out

    def __call__(self, records: list[Record]) -> list[Out]:
        return self.handler(records, self.stores)

    def state(self, shipment_id: str = SHIPMENT) -> ShipmentState:
        state = read_state(self.stores["shipments"].get, shipment_id)
        assert state is not None
        return state
