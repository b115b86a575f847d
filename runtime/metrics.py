"""Every Prometheus metric the hub's processes export, the calls that move them, and `serve`, which exports them.

Each long-running process (`mmhub worker`, `sink`, `share`, `webhooks run`, `gateway`) serves the metrics at
`http://MMHUB_METRICS_HOST:PORT/metrics`, PORT being MMHUB_METRICS_PORT or the process's default (DEFAULT_PORTS, so
the five can run on one host); MMHUB_METRICS_PORT=0 turns it off. Every process exports every metric: a labelled
one it never moves has no series, an unlabelled one (the parked gauges, the latency histogram, the SSE gauge) stays
at 0 outside the process that moves it, so the dashboard sums or takes the max over processes. The names here are the only ones infra/monitoring's dashboard and alert rules
may use (tests/unit/runtime/test_metrics.py reads them).

The calls take plain numbers, so the faust worker, the stage runtime and the Postgres loop report alike:
`observe_checkpoint` per batch or checkpoint, `observe_lag` per poll, `count_events` for the merge's outcomes,
`observe_parked` for the references waiting.
"""

from __future__ import annotations

import gc
import os
import time
from typing import Mapping

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics, start_http_server

disable_created_metrics()  # type: ignore[no-untyped-call]  # no `_created` series: they double what is scraped and nothing here reads them
# Per process kind, the port its metrics are served on unless MMHUB_METRICS_PORT says otherwise.
DEFAULT_PORTS = {"worker": 9401, "sink": 9402, "share": 9403, "webhooks": 9404, "gateway": 9405}
DEFAULT_HOST = "127.0.0.1"  # MMHUB_METRICS_HOST=0.0.0.0 in a container, for Prometheus to reach it

# --- the stages: input, output, batches, lag ------------------------------------------------------------------------

RECORDS_IN = Counter("mmhub_records_in", "Records a stage consumed, per input topic", ["stage", "topic"])
RECORDS_OUT = Counter(
    "mmhub_records_out",
    "Records a stage produced, per output topic (Postgres stages: destination 'postgres', the records written)",
    ["stage", "destination"],
)
BATCH_RECORDS = Histogram(
    "mmhub_batch_records",
    "Records per batch (Postgres stages) or per checkpoint (stream stages)",
    ["stage"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000),
)
COMMIT_SECONDS = Histogram(
    "mmhub_commit_seconds",
    "How long a batch's commit took (Postgres stages: the transaction with its offsets; stream stages: the checkpoint)",
    ["stage"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
CONSUMER_LAG = Gauge(
    "mmhub_consumer_lag",
    "Records on a partition not yet committed by the stage: the partition's high watermark minus the stage's next "
    "offset",
    ["group", "topic", "partition"],
)
QUARANTINED = Counter("mmhub_quarantined", "Records a stage set aside in the quarantine table", ["stage", "topic"])

# --- the merge ------------------------------------------------------------------------------------------------------

EVENTS = Counter("mmhub_events", "Events the worker took in, by outcome (applied, duplicate)", ["outcome"])
DEAD_LETTERED = Counter("mmhub_dead_lettered", "Messages sent to the dead-letter topic, by reason code", ["reason"])
PARKED = Gauge("mmhub_parked_events", "Carrier events parked until their reference is registered")
PARKED_OLDEST_SECONDS = Gauge(
    "mmhub_parked_oldest_age_seconds", "How long the oldest parked event has waited (0 when none waits)"
)
PUBLISH_TO_STATUS_SECONDS = Histogram(
    "mmhub_publish_to_status_seconds",
    "From a record's updated_at (the latest recorded_at of its events) to its status message's timestamp, per status "
    "message the sink writes",
    buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)

# --- webhooks -------------------------------------------------------------------------------------------------------

WEBHOOK_DELIVERED = Counter(
    "mmhub_webhook_delivered", "Notifications delivered (answered 2xx), per subscription", ["subscription"]
)
WEBHOOK_RETRIES = Counter(
    "mmhub_webhook_retries", "Notifications whose delivery failed and will be tried again, per subscription",
    ["subscription"],
)
WEBHOOK_DEAD = Counter(
    "mmhub_webhook_dead", "Notifications given up on (dead), per subscription", ["subscription"]
)

# --- the gateway ----------------------------------------------------------------------------------------------------

HTTP_REQUESTS = Counter("mmhub_http_requests", "Gateway requests answered, by route and status", ["route", "status"])
HTTP_SECONDS = Histogram(
    "mmhub_http_request_seconds",
    "Gateway request latency until the answer (the whole stream for SSE), by route",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
SSE_STREAMS_OPEN = Gauge("mmhub_sse_streams_open", "Live views (SSE) open now")

# --- the process ------------------------------------------------------------------------------------------------------

GC_PAUSE_SECONDS = Histogram(
    "mmhub_gc_pause_seconds",
    "How long each run of Python's cyclic garbage collector held the process (nothing else runs meanwhile), by the "
    "oldest generation it collected",
    ["generation"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)

METRICS = (
    RECORDS_IN, RECORDS_OUT, BATCH_RECORDS, COMMIT_SECONDS, CONSUMER_LAG, QUARANTINED, EVENTS, DEAD_LETTERED,
    PARKED, PARKED_OLDEST_SECONDS, PUBLISH_TO_STATUS_SECONDS, WEBHOOK_DELIVERED, WEBHOOK_RETRIES, WEBHOOK_DEAD,
    HTTP_REQUESTS, HTTP_SECONDS, SSE_STREAMS_OPEN, GC_PAUSE_SECONDS,
)  # fmt: skip


SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum")}


def exported_names() -> set[str]:
    """Every series name Prometheus scrapes from the hub (a counter's `_total`, a histogram's `_bucket`...)."""
    return {family.name + suffix for metric in METRICS for family in metric.describe() for suffix in SUFFIXES[family.type]}


# --- what the stages call -------------------------------------------------------------------------------------------


def observe_checkpoint(
    stage: str, seconds: float, records_in: Mapping[str, int], records_out: Mapping[str, int]
) -> None:
    """One batch or checkpoint of `stage` committed in `seconds`: the records it consumed per input topic and
    produced per output topic (or 'postgres')."""
    COMMIT_SECONDS.labels(stage).observe(seconds)
    BATCH_RECORDS.labels(stage).observe(sum(records_in.values()))
    for topic, count in records_in.items():
        RECORDS_IN.labels(stage, topic).inc(count)
    for destination, count in records_out.items():
        RECORDS_OUT.labels(stage, destination).inc(count)


def observe_lag(group: str, lags: Mapping[tuple[str, int], int]) -> None:
    """Per (topic, partition) the consumer group holds, how many records it has yet to commit."""
    for (topic, partition), lag in lags.items():
        CONSUMER_LAG.labels(group, topic, str(partition)).set(max(0, lag))


def forget_lag(group: str, partitions: list[tuple[str, int]]) -> None:
    """Partitions the group no longer holds here: their lag is another process's to report."""
    for topic, partition in partitions:
        try:
            CONSUMER_LAG.remove(group, topic, str(partition))
        except KeyError:
            pass


def count_events(applied: int, duplicates: int, dead_lettered: Mapping[str, int]) -> None:
    """Since the last call: events applied, recognised duplicates, and messages dead-lettered per reason code."""
    EVENTS.labels("applied").inc(applied)
    EVENTS.labels("duplicate").inc(duplicates)
    for reason, count in dead_lettered.items():
        DEAD_LETTERED.labels(reason).inc(count)


def quarantined(stage: str, topics: list[str]) -> None:
    """`stage` set aside one record of each of `topics` (a topic repeated once per record)."""
    for topic in topics:
        QUARANTINED.labels(stage, topic).inc()


def observe_parked(count: int, oldest_age_s: float | None) -> None:
    PARKED.set(count)
    PARKED_OLDEST_SECONDS.set(oldest_age_s or 0.0)


class CollectorWatch:
    """A `gc.callbacks` entry: each collection's pause (wall time from its start to its stop) into GC_PAUSE_SECONDS,
    and per generation the runs, the seconds held, the longest pause and the objects found unreachable, for a
    process's own report (the worker logs them with its counters)."""

    def __init__(self) -> None:
        self.runs = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self.longest = [0.0, 0.0, 0.0]
        self.collected = [0, 0, 0]
        self._started: float | None = None

    def __call__(self, phase: str, info: Mapping[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        if self._started is None:  # registered during a collection: its start was not seen
            return
        held, self._started = time.perf_counter() - self._started, None
        generation = info["generation"]
        self.runs[generation] += 1
        self.seconds[generation] += held
        self.longest[generation] = max(self.longest[generation], held)
        self.collected[generation] += info["collected"]
        GC_PAUSE_SECONDS.labels(str(generation)).observe(held)

    def summary(self) -> str:
        """One line: per generation, runs, seconds held, the longest pause and the objects collected."""
        return " ".join(
            f"gen{g}: {self.runs[g]} runs {self.seconds[g]:.3f} s (longest {1000 * self.longest[g]:.1f} ms, "
            f"{self.collected[g]} collected)"
            for g in range(3)
        )


_WATCH: CollectorWatch | None = None


def watch_collector() -> CollectorWatch:
    """The process's CollectorWatch, registered with `gc.callbacks` on the first call."""
    global _WATCH
    if _WATCH is None:
        _WATCH = CollectorWatch()
        gc.callbacks.append(_WATCH)
    return _WATCH


# --- serving ----------------------------------------------------------------------------------------------------------


def port_for(process: str, environ: Mapping[str, str] | None = None) -> int:
    """MMHUB_METRICS_PORT, else the process's default; 0 means no metrics endpoint."""
    environ = os.environ if environ is None else environ
    text = environ.get("MMHUB_METRICS_PORT")
    if text is None:
        return DEFAULT_PORTS[process]
    port = int(text)
    if not 0 <= port <= 65535:
        raise ValueError(f"MMHUB_METRICS_PORT={text} is not a port (0 turns metrics off)")
    return port


def host_for(environ: Mapping[str, str] | None = None) -> str:
    """MMHUB_METRICS_HOST, else DEFAULT_HOST: the address /metrics is served on."""
    return (os.environ if environ is None else environ).get("MMHUB_METRICS_HOST", DEFAULT_HOST)


def serve(port: int, host: str | None = None) -> None:
    """Serve /metrics on `port` (nothing if 0) from a daemon thread, for the life of the process."""
    if port == 0:
        return
    watch_collector()  # every process that exports metrics reports its collector's pauses
    start_http_server(port, addr=host or host_for())
