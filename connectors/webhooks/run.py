"""`mmhub webhooks run`: the filler and the dispatcher in one process, until SIGTERM; and the settings from the
environment (`MMHUB_WEBHOOKS_*`)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from datetime import datetime, timezone
from typing import Callable

from connectors.postgres.migrate import migrate
from connectors.webhooks.delivery import WebhookConfig
from connectors.webhooks.dispatcher import Dispatcher
from connectors.webhooks.egress import Resolve, session, system_resolve
from connectors.webhooks.filler import run_filler
from connectors.webhooks.store import WebhookStore
from hubconf.settings import Settings
from runtime.stored_offsets import Stopped

log = logging.getLogger(__name__)

USER_AGENT = "mmhub-webhooks/1"


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def config_from_env(environ: dict[str, str] | None = None) -> WebhookConfig:
    """`MMHUB_WEBHOOKS_<FIELD>` for each WebhookConfig field (e.g. MMHUB_WEBHOOKS_BATCH_SIZE=20,
    MMHUB_WEBHOOKS_ALLOW_HOSTS=hooks.internal,10.20.0.0/16); defaults otherwise."""
    environ = dict(os.environ) if environ is None else environ
    defaults = WebhookConfig()
    values: dict[str, object] = {}
    for field in dataclasses.fields(WebhookConfig):
        text = environ.get(f"MMHUB_WEBHOOKS_{field.name.upper()}")
        if text is None:
            continue
        kind = type(getattr(defaults, field.name))
        if kind is bool:
            values[field.name] = text.strip().lower() in ("1", "true", "yes")
        elif kind is tuple:  # comma-separated
            values[field.name] = tuple(item.strip() for item in text.split(",") if item.strip())
        else:
            values[field.name] = kind(text)
    return WebhookConfig(**values)  # type: ignore[arg-type]


async def run_webhooks(
    settings: Settings,
    config: WebhookConfig,
    stop: asyncio.Event,
    clock: Callable[[], datetime] = utc_now,
    resolve: Resolve = system_resolve,
) -> None:
    """Migrate and check the keyring against the stored secrets (KeyProblem if it does not open them), then queue
    share messages (filler) and deliver them (dispatcher) until `stop` is set. Subscribers' host names are resolved
    through `resolve` (a local stub in tests)."""
    store = await WebhookStore.open(settings, config)
    try:
        try:
            applied = await store.patiently(lambda conn: migrate(conn, settings.pg_schema), stop)
            sealed = await store.patiently(store.seal, stop)
        except Stopped:
            return
        if applied:
            log.info("applied migrations %s to schema %s", ", ".join(applied), settings.pg_schema)
        if sealed:
            log.info("sealed the clear-text secrets of %d subscription(s)", sealed)
        async with session(store.policy, config.timeout_s, USER_AGENT, resolve) as client:
            dispatcher = Dispatcher(settings, store, client, clock)
            async with asyncio.TaskGroup() as tasks:  # one failing stops the other
                tasks.create_task(run_filler(settings, store, stop, clock=clock))
                tasks.create_task(dispatcher.run(stop))
    finally:
        await store.close()
