"""Finding 4: a party's webhook URL must not aim the hub at its own network, nor make it a port scanner.

The subscriptions and the outbox are in the real Postgres; the dispatcher is the real one (`run_webhooks`), with
host names resolved by a local stub. Every connection the test process attempts goes through `tripwire`, which
records it and refuses anything but loopback before a socket is opened: no traffic leaves the machine.
"""

from __future__ import annotations

import asyncio
import ipaddress
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, Iterator, Sequence

import aiohappyeyeballs
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from connectors.parties import load_parties
from connectors.webhooks.delivery import WebhookConfig
from connectors.webhooks.notifications import SubscriptionRequest
from connectors.webhooks.routes import add_subscription_routes
from connectors.webhooks.run import run_webhooks
from hubconf.settings import Settings

from tests.integration.test_webhooks import SHIPPER, TOKENS, Subscriber, fetch, free_port, status, store_for, until

pytestmark = pytest.mark.integration

NewSettings = Callable[..., Awaitable[Settings]]

# What a party tried, and the hub accepted, before the fix: each reaches the hub's own loopback.
BYPASSES = [
    "https://①②⑦.0.0.1/hook",
    "https://ⓛⓞⓒⓐⓛⓗⓞⓢⓣ/hook",
    "https://localhost./hook",
    "https://2130706433/hook",  # 127.0.0.1 as one decimal number
    "https://0x7f.1/hook",  # hexadecimal, short form
    "https://0x7f000001/hook",
    "https://017700000001/hook",  # octal
    "https://127.1/hook",
    "https://[::ffff:127.0.0.1]/hook",
]
# Only what the delivery loop needs; the defaults otherwise (no allow-list: the production rules).
FAST = dict(timeout_s=2.0, poll_s=0.05, backoff_base_s=0.05, backoff_cap_s=0.2)


@pytest.fixture(autouse=True)
def tripwire(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every address aiohttp tries to connect to, in order; a non-loopback one is refused before any socket."""
    attempts: list[str] = []
    real = aiohappyeyeballs.start_connection

    async def guarded(addr_infos: Sequence[Any], *args: Any, **kwargs: Any) -> Any:
        for info in addr_infos:
            attempts.append(str(info[4][0]))
            if not ipaddress.ip_address(info[4][0]).is_loopback:
                raise ConnectionRefusedError(f"tripwire: the test never connects to {info[4][0]}")
        return await real(addr_infos, *args, **kwargs)

    monkeypatch.setattr(aiohappyeyeballs, "start_connection", guarded)
    yield attempts


class Listener:
    """A TCP port on 127.0.0.1 that answers any connection with a plain-text HTTP error and hangs up: open, no TLS."""

    def __init__(self) -> None:
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Listener:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            writer.close()

        self.server = await asyncio.start_server(accept, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    @property
    def port(self) -> int:
        assert self.server is not None
        port: int = self.server.sockets[0].getsockname()[1]
        return port


class Stub:
    """The local resolver: name -> addresses, a list of answers per name, the last one repeated; every question kept."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    async def __call__(self, host: str) -> list[str]:
        self.asked.append(host)
        found = self.answers.get(host)
        if not found:
            raise OSError(f"stub: no such host {host}")
        return found.pop(0) if len(found) > 1 else found[0]


async def stored(settings: Settings, urls: list[str]) -> list[str]:
    """One subscription per URL, stored as if made before the rules tightened (subscribed with a harmless URL, then
    the URL set directly), each with one notification due. The subscription ids, in order."""
    ids = []
    async with store_for(settings, WebhookConfig()) as store:
        for url in urls:
            made = await store.subscribe(SHIPPER, SubscriptionRequest(url="https://hooks.example.com/h"),
                                         datetime.now(timezone.utc))
            await fetch(settings, "UPDATE webhook_subscriptions SET url = $2 WHERE subscription_id = $1",
                        made.subscription_id, url)
            await due(settings, made.subscription_id, 1)
            ids.append(made.subscription_id)
    return ids


async def due(settings: Settings, subscription_id: str, version: int) -> None:
    """A notification for the subscription, due now, straight into the outbox."""
    await fetch(
        settings,
        "INSERT INTO webhook_outbox (subscription_id, message_key, shipment_id, kind, payload, next_attempt_at,"
        " created_at) VALUES ($1, $2, 'SHP-S-1', 'status', $3::jsonb, now(), now())",
        subscription_id, f"{SHIPPER}/SHP-S-1/{version}/status/", orjson.dumps(status(SHIPPER, "SHP-S-1", version)).decode(),
    )


async def attempted(settings: Settings, ids: list[str], config: WebhookConfig, **options: Any) -> dict[str, str]:
    """Run the webhooks service until each subscription's latest notification was attempted; its last_error (or its
    state, if delivered) per subscription."""

    async def outcomes() -> dict[str, str]:
        rows = await fetch(settings, "SELECT DISTINCT ON (subscription_id) subscription_id, state, attempts, last_error"
                                     " FROM webhook_outbox ORDER BY subscription_id, seq DESC")
        return {r["subscription_id"]: r["last_error"] or r["state"] for r in rows if r["attempts"] >= 1}

    stop = asyncio.Event()
    task = asyncio.create_task(run_webhooks(settings, config, stop, **options))
    try:
        async def all_attempted() -> bool:
            return set(await outcomes()) >= set(ids)

        await until(all_attempted, "an attempt for every subscription", timeout=60, task=task)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    found = await outcomes()
    return {sid: found[sid] for sid in ids}


async def test_disguised_loopback_and_odd_numeric_hosts_are_refused_when_subscribing(hub_settings: NewSettings) -> None:
    """Through the gateway, as a party would."""
    settings = await hub_settings()
    auth = {"Authorization": f"Bearer {TOKENS[SHIPPER]}"}
    answers = {}
    async with store_for(settings, WebhookConfig()) as store:
        app = web.Application()
        add_subscription_routes(app, store, load_parties(settings.parties_path))
        async with TestClient(TestServer(app)) as api:
            for url in BYPASSES:
                response = await api.post("/v1/subscriptions", data=orjson.dumps({"url": url}), headers=auth)
                answers[url] = (response.status, orjson.loads(await response.read()).get("error", {}))
            good = await api.post("/v1/subscriptions", data=orjson.dumps({"url": "https://Hooks.Example.com./h"}),
                                  headers=auth)
            made = orjson.loads(await good.read())
    assert {url: status for url, (status, _) in answers.items()} == {url: 422 for url in BYPASSES}, answers
    assert (good.status, made["url"]) == (201, "https://hooks.example.com/h")  # stored as the hub reads it
    rows = await fetch(settings, "SELECT url FROM webhook_subscriptions")
    assert [row["url"] for row in rows] == ["https://hooks.example.com/h"]


async def test_a_stored_loopback_url_is_never_connected_and_an_open_port_looks_like_a_closed_one(
    hub_settings: NewSettings, tripwire: list[str]
) -> None:
    """Subscriptions stored before the fix still aim at loopback: the dispatcher judges each URL again, does not
    connect, and says the same for an open port as for a closed one."""
    settings = await hub_settings()
    closed = free_port()
    async with Listener() as open_port:
        urls = [f"https://localhost.:{open_port.port}/hook", f"https://localhost.:{closed}/hook",
                f"https://①②⑦.0.0.1:{open_port.port}/hook", f"https://ⓛⓞⓒⓐⓛⓗⓞⓢⓣ:{closed}/hook"]
        ids = await stored(settings, urls)
        outcomes = await attempted(settings, ids, WebhookConfig(**FAST))
    listed = {row["subscription_id"]: row["last_error"] for row in await fetch_overview(settings)}
    assert open_port.connections == 0 and tripwire == [], (open_port.connections, tripwire, outcomes)
    assert outcomes == {sid: "blocked_address" for sid in ids}, outcomes
    assert listed == outcomes  # what the party lists


async def fetch_overview(settings: Settings) -> list[dict[str, Any]]:
    async with store_for(settings, WebhookConfig()) as store:
        return await store.overview(SHIPPER)


async def test_names_resolving_to_non_public_addresses_are_not_connected(
    hub_settings: NewSettings, tripwire: list[str]
) -> None:
    settings = await hub_settings()
    stub = Stub({
        "intranet.example": [["10.0.0.7"]],
        "metadata.example": [["169.254.169.254"]],
        "mapped.example": [["::ffff:127.0.0.1"]],
        "ula.example": [["fc00::1"]],
        "sixtofour.example": [["2002:7f00:1::1"]],
        "mixed.example": [["8.8.8.8", "10.0.0.7"]],  # one non-public address is enough
    })
    names = list(stub.answers)
    ids = await stored(settings, [f"https://{name}/hook" for name in names])
    outcomes = await attempted(settings, ids, WebhookConfig(**FAST), resolve=stub)
    assert outcomes == {sid: "blocked_address" for sid in ids}, outcomes
    assert set(stub.asked) == set(names)  # each was resolved at delivery time
    assert tripwire == []  # and not one connection was attempted


async def test_dns_rebinding_reaches_only_the_address_that_was_vetted(
    hub_settings: NewSettings, tripwire: list[str]
) -> None:
    """The stub answers an allowed address (127.0.0.2, allow-listed as a network) first, then 127.0.0.1. The hub
    connects to what it vetted, never to the address the name later rebinds to."""
    settings = await hub_settings()
    vetted: list[bytes] = []
    vetted_app = web.Application()

    async def receive(request: web.Request) -> web.Response:
        vetted.append(await request.read())
        return web.Response(status=204, headers={"Connection": "close"})  # a new connection (and resolution) each time

    vetted_app.router.add_post("/hook", receive)
    vetted_runner = web.AppRunner(vetted_app)
    await vetted_runner.setup()
    await web.TCPSite(vetted_runner, "127.0.0.2", 0).start()
    port = vetted_runner.addresses[0][1]
    rebound = Subscriber(port=port)  # the same port on 127.0.0.1: where a rebinding would land
    await rebound.start()
    stub = Stub({"rebind.example": [["127.0.0.2"], ["127.0.0.1"]]})
    config = WebhookConfig(**FAST, allow_http=True, allow_hosts=("127.0.0.2",))
    try:
        [sid] = await stored(settings, [f"http://rebind.example:{port}/hook"])
        first = await attempted(settings, [sid], config, resolve=stub)
        await due(settings, sid, 2)
        second = await attempted(settings, [sid], config, resolve=stub)
    finally:
        await rebound.stop()
        await vetted_runner.cleanup()
    assert first == {sid: "delivered"} and len(vetted) == 1
    assert second == {sid: "blocked_address"}
    assert rebound.calls == [] and set(tripwire) == {"127.0.0.2"}, tripwire
    assert stub.asked[0] == "rebind.example" and len(stub.asked) >= 2  # asked again for each new connection


async def test_the_allow_list_lets_the_operator_reach_a_local_host_and_the_party_sees_only_failure_classes(
    hub_settings: NewSettings,
) -> None:
    settings = await hub_settings()
    closed = free_port()

    def leaky(notifications: list[dict[str, Any]]) -> tuple[int, dict[str, str], str]:
        return 500, {}, "Traceback: db password hunter2 at 10.0.0.5"

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(10)
        return web.Response(status=204)

    failing = Subscriber(leaky)
    await failing.start()
    slow_app = web.Application()
    slow_app.router.add_post("/hook", slow)
    async with TestServer(slow_app, host="127.0.0.1") as slow_server, Listener() as open_port:
        urls = [f"https://127.0.0.1:{closed}/hook", f"https://127.0.0.1:{open_port.port}/hook", failing.url,
                f"http://127.0.0.1:{slow_server.port}/hook", f"https://ⓛⓞⓒⓐⓛⓗⓞⓢⓣ:{open_port.port}/hook"]
        ids = await stored(settings, urls)
        config = WebhookConfig(**{**FAST, "timeout_s": 1.0}, allow_http=True, allow_hosts=("127.0.0.1",))
        outcomes = await attempted(settings, ids, config)
    await failing.stop()
    assert [outcomes[sid] for sid in ids] == ["refused", "tls", "http_500", "timeout", "blocked_address"], outcomes
    assert open_port.connections >= 1 and len(failing.calls) >= 1  # the allowed ones were really tried
