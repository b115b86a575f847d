"""Finding 9: the gateway had no header read timeout; silent partial requests were still open after 150 s. Against
`mmhub gateway` on loopback, a connection that sends part of a request head and then nothing is closed by the
server within the header timeout (10 s), while a whole request on another connection is answered.
"""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path
from typing import Awaitable, Callable

import aiohttp
import pytest

from hubconf.settings import Settings
from tests.integration.hub import HubProcess, wait_for_gateway

pytestmark = pytest.mark.integration

HEADER_TIMEOUT_S = 10.0  # connectors.gateway.guards.HEADER_TIMEOUT_S
GRACE_S = 5.0  # aiohttp's timer and a busy machine


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until_closed(sock: socket.socket, limit_s: float) -> float | None:
    """Seconds until the server closed the connection (recv gives b"" or a reset), or None if it was still open."""
    start = time.monotonic()
    sock.settimeout(limit_s)
    try:
        while data := sock.recv(4096):
            assert False, f"the server answered a request it never fully got: {data[:200]!r}"
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return time.monotonic() - start


async def test_a_request_head_that_stops_arriving_has_its_connection_closed(
    hub_settings: Callable[..., Awaitable[Settings]], tmp_path: Path
) -> None:
    settings = await hub_settings()
    port = free_port()
    gateway = HubProcess("gateway", settings, tmp_path / "gw-data", tmp_path / "gateway.log", args=["--port", str(port)])
    gateway.start()
    try:
        async with aiohttp.ClientSession() as session:
            await wait_for_gateway(session, f"http://127.0.0.1:{port}", gateway)
            with socket.create_connection(("127.0.0.1", port)) as slow:
                slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")  # and never the rest
                closed = asyncio.create_task(asyncio.to_thread(wait_until_closed, slow, HEADER_TIMEOUT_S + GRACE_S))
                async with session.get(f"http://127.0.0.1:{port}/healthz") as response:  # others are served
                    assert response.status == 200
                took = await closed
        print(f"a partial request head was closed by the server after {took} s")
        assert took is not None, f"still open after {HEADER_TIMEOUT_S + GRACE_S} s"
    finally:
        gateway.stop()
