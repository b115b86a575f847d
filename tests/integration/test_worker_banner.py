"""What `mmhub worker` says when it starts, against the real broker: its stages with their consumer groups, inputs
and stores, the topics it writes, the guarantee, its state directory and its metrics address; each of them true of
the running worker (the metrics answer there, the state is where it says, the stages join the groups it names)."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from aiokafka.admin import AIOKafkaAdminClient

from hubconf.settings import Settings
from tests.integration.hub import HubProcess, wait_for
from tests.integration.test_webhooks import free_port


async def test_the_worker_says_what_it_runs_and_it_is_true(
    hub: tuple[Settings, HubProcess, HubProcess], tmp_path: Path
) -> None:
    settings, worker, _ = hub
    port = free_port()
    worker.env.update(MMHUB_METRICS_PORT=str(port), MMHUB_GUARANTEE="exactly_once")
    data_dir = tmp_path / "worker-data"
    t = settings.topics
    ns, app = settings.namespace, settings.app_id
    raw = ", ".join(f"{ns}.carrier.{name}.raw" for name in ("canonical", "dcsa", "edifact", "onerecord", "epcis", "ubl"))
    expected = [
        f"mmhub worker {app}: stages connect, resolve, merge on the stage runtime, each its own consumer group;"
        f" guarantee exactly_once (MMHUB_GUARANTEE); Kafka {settings.kafka} as worker",
        f"stage connect: group {app}.connect; reads {raw}; stores none",
        f"stage resolve: group {app}.resolve; reads {t.references}; stores references (changelog {app}-references-changelog)",
        f"stage merge: group {app}.merge; reads {t.events}; stores shipments (changelog {app}-shipments-changelog),"
        f" deadlines (changelog {app}-deadlines-changelog)",
        f"writes {t.events}, {t.references}, {t.dlq}, {t.status}, {t.settlement}, {t.claims}, {t.release}, {t.parked}",
        f"state: RocksDB under {data_dir} (MMHUB_DATA_DIR), one directory per stage group and partition",
        f"metrics: http://127.0.0.1:{port}/metrics",
        "presumed-loss clock every 600 s; counters logged every 30 s",
    ]
    worker.start()

    def said() -> list[str]:
        return [line.split("] ", 3)[-1] for line in worker.log.read_text(errors="replace").splitlines()]

    async def ready() -> bool:
        return any(line.endswith("[^Worker]: Ready") for line in said())

    await wait_for(ready, 90, "the worker to be ready", worker)
    lines = said()
    start = lines.index(expected[0])
    assert lines[start : start + len(expected)] == expected
    assert start < next(i for i, line in enumerate(lines) if line.endswith("[^Worker]: Ready")), "before Ready"
    banner = " ".join(expected).lower()
    assert "agent" not in banner and "table" not in banner, "no faust-era wording: the stages run on runtime.loop"

    # each claim holds: the metrics answer at the address, the stages join the groups named and keep their state
    # where the banner says
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/metrics") as response:
        assert response.status == 200 and "mmhub_" in await response.text()
    admin = AIOKafkaAdminClient(**settings.kafka_client())
    await admin.start()
    try:

        async def joined() -> bool:
            groups = {group for group, *_ in await admin.list_consumer_groups()}
            return {f"{app}.connect", f"{app}.resolve", f"{app}.merge"} <= groups

        await wait_for(joined, 90, "the stage groups", worker)
    finally:
        await admin.close()

    async def state_in_place() -> bool:
        return all((data_dir / f"{app}.{stage}").is_dir() for stage in ("resolve", "merge"))

    await wait_for(state_in_place, 90, "the stores under MMHUB_DATA_DIR", worker)
