"""The worker's Kafka consumer with a short fetch wait, so a busy merge does not leave input waiting 1.5 s.

Why: aiokafka keeps at most one fetch request in flight per broker, and leaves out of it every partition whose
fetched records the application has not taken yet. faust (0.15.x) builds its worker consumer with a fixed
`fetch_max_wait_ms=1500`. When the merge is busy, every `hub.events` partition still holds fetched records at the
moment the next fetch is sent, so that fetch names only the quiet topics (the raw carrier topics, references):
the broker holds it for the full 1.5 s, and the events partitions, drained meanwhile, cannot be fetched again
until it returns. Measured with bench.latency at 50 % of the max rate: input reached the merge agent in bursts,
1.5–2.6 s after it was published, with the agent idle for 0.2–1.1 s between bursts (p99 to the status topic
1.9–3.8 s in three runs; 0.3–0.55 s with a 20 ms wait, 0.14–0.25 s with 50 ms). A short wait bounds that to the
wait itself, at a price when idle: the worker then fetches every wait, and faust's path for an empty fetch is not
cheap. An idle worker's CPU, one 10 s sample each: 0.04 cores at 1.5 s, 0.05 at 100 ms, 0.08 at 50 ms, 0.12 at
20 ms. 50 ms is the default.

The other long-running consumers (the Postgres sink, the sharing stage, the webhook filler) pass the same
setting to aiokafka directly.

What: faust's aiokafka `Consumer` with a consumer thread that sets the aiokafka consumer's fetch wait before the
consumer starts (the fetcher is built from it in `start()`), installed as the app transport's `Consumer` class.
"""

from __future__ import annotations

from typing import Any

import aiokafka
import faust
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Consumer

# The attributes this relies on; fail at import, not silently, if an upgrade renames them.
assert hasattr(AIOKafkaConsumerThread, "_create_worker_consumer"), "review worker.fetching: faust changed"
assert hasattr(Consumer, "_new_consumer_thread"), "review worker.fetching: faust changed"


def prompt_consumer(fetch_max_wait_ms: int) -> type[Consumer]:
    """faust's aiokafka Consumer whose worker consumer waits at most `fetch_max_wait_ms` for a fetch."""
    if fetch_max_wait_ms < 1:
        raise ValueError(f"fetch_max_wait_ms must be at least 1, not {fetch_max_wait_ms}")

    class PromptConsumerThread(AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
            consumer = super()._create_worker_consumer(transport)
            if not isinstance(getattr(consumer, "_fetch_max_wait_ms", None), int):
                raise RuntimeError("aiokafka's consumer has no _fetch_max_wait_ms: review worker.fetching")
            consumer._fetch_max_wait_ms = fetch_max_wait_ms
            return consumer

    class PromptConsumer(Consumer):
        def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
            return PromptConsumerThread(self, loop=self.loop, beacon=self.beacon)

    return PromptConsumer


def install(app: faust.App, fetch_max_wait_ms: int) -> None:
    """Make `app` create its consumer with `fetch_max_wait_ms` (before the worker starts it)."""
    # faust declares Consumer a ClassVar of its transports; only this app's transport gets the prompt one
    app.transport.Consumer = prompt_consumer(fetch_max_wait_ms)  # type: ignore[misc]
