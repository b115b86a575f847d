"""The gateway's Kafka producer: every send waits for the broker's acknowledgement (acks=all, idempotent)."""

from __future__ import annotations

import asyncio

from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from connectors.gateway.intake import Headers, Unavailable
from hubconf.topics import DLQ_MAX_MESSAGE_BYTES

REQUEST_TIMEOUT_MS = 10_000
# A little longer than the client's own timeout, so the client's error (with its reason) usually comes first.
SEND_TIMEOUT_S = 15.0
READY_TIMEOUT_S = 3.0


class KafkaPublisher:
    def __init__(self, client: dict[str, Any], client_id: str = "mmhub-gateway") -> None:
        """`client`: Settings.kafka_client(), the servers and the gateway principal's credentials."""
        self._producer = AIOKafkaProducer(
            **client,
            client_id=client_id,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            # A whole request body may be dead-lettered as one message: as large as the DLQ topic allows.
            max_request_size=DLQ_MAX_MESSAGE_BYTES,
            request_timeout_ms=REQUEST_TIMEOUT_MS,
        )

    async def start(self) -> None:
        try:
            await self._producer.start()
        except BaseException:
            await self._producer.stop()  # a producer that could not start is closed too (no "Unclosed" at exit)
            raise

    async def stop(self) -> None:
        await self._producer.stop()

    async def send(self, topic: str, key: bytes | None, value: bytes, headers: Headers) -> None:
        """Return once the message is acknowledged by all in-sync replicas; raise Unavailable if it is not."""
        try:
            await asyncio.wait_for(self._send(topic, key, value, headers), SEND_TIMEOUT_S)
        except (KafkaError, TimeoutError) as error:
            raise Unavailable(f"Kafka did not take the message for {topic}: {error!r}") from error

    async def _send(self, topic: str, key: bytes | None, value: bytes, headers: Headers) -> None:
        delivery = await self._producer.send(topic, value=value, key=key, headers=headers)
        await delivery

    async def ready(self) -> bool:
        """Can the producer reach the cluster now? (A fresh metadata round trip.)"""
        try:
            updated: bool = await asyncio.wait_for(self._producer.client.force_metadata_update(), READY_TIMEOUT_S)
        except (KafkaError, TimeoutError):
            return False
        return updated
