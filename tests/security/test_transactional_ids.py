"""The worker's transactional ids are its own (connectors.acl.runtime_acls): a party or another hub process that
took `<stage group>.<partition>` could init a producer with it and so fence the worker's producer of that
partition (abort its open transaction, make its next commit fail) at will: a denial of service on the merge."""

from __future__ import annotations

from typing import Any, Awaitable, Callable

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import TransactionalIdAuthorizationFailed

from hubconf.settings import Settings
from tests.security.test_kafka_auth import onboarded, tag

pytestmark = pytest.mark.integration


async def init_transactions(client: dict[str, Any], transactional_id: str) -> None:
    producer = AIOKafkaProducer(**client, transactional_id=transactional_id, enable_idempotence=True)
    try:
        await producer.start()  # InitProducerId: the request that fences the id's previous producer
    finally:
        await producer.stop()


async def test_no_party_and_no_other_process_may_take_the_worker_stages_transactional_ids(
    hub_settings: Callable[..., Awaitable[Settings]],
) -> None:
    settings = await hub_settings()
    merge_zero = f"{settings.stage_group('merge')}.0"
    carrier = await onboarded(settings, f"carrier.rail-{tag()}", "carrier")
    with pytest.raises(TransactionalIdAuthorizationFailed):
        await init_transactions(carrier, merge_zero)
    with pytest.raises(TransactionalIdAuthorizationFailed):
        await init_transactions(settings.as_principal("sink").kafka_client(), merge_zero)
    # the control: the worker's own principal may, for each of its stages
    for stage in ("connect", "resolve", "merge"):
        await init_transactions(settings.as_principal("worker").kafka_client(), f"{settings.stage_group(stage)}.3")
