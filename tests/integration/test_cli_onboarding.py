"""Onboarding a carrier's key from the command line, and README's openssl recipe for signing by hand, run as it is
against a real `mmhub gateway` (real broker and database): the gateway's v1 check accepts what openssl signed."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Awaitable, Callable

import aiohttp
import orjson
import pytest

from connectors.carriers import load_registry
from hubconf.settings import DEFAULT_CARRIERS, Settings
from tests.integration.cli import REPO, env_of, mmhub
from tests.integration.hub import JOURNEY, HubProcess, wait_for_gateway

CARRIER = "carrier.oceanline"
LINES = [line for line in JOURNEY.read_bytes().splitlines() if orjson.loads(line)["source"] == CARRIER]


def recipe() -> str:
    """The shell block of README between the sign-by-hand markers."""
    text = (REPO / "README.md").read_text()
    block = re.search(r"<!-- sign-by-hand -->\n```sh\n(.*?)```\n<!-- /sign-by-hand -->", text, re.S)
    assert block is not None, "README has the sign-by-hand block"
    return block.group(1)


def new_key(workdir: Path, key_id: str, algorithm: str) -> Path:
    """`mmhub keys new --out` in `workdir`: the signing key as newco.key.json, the entry as entry.json."""
    workdir.mkdir()
    args = ["keys", "new", "--carrier", CARRIER, "--key-id", key_id, "--algorithm", algorithm, "--out", "newco.key.json"]
    code, _, out = mmhub(args, {}, workdir)
    assert code == 0
    (workdir / "entry.json").write_bytes(out)
    (workdir / "events.json").write_bytes(b"[" + b",".join(LINES) + b"]")
    return workdir


def signed_by_hand(workdir: Path, gateway: str) -> dict[str, object]:
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", recipe()], cwd=workdir, env={"PATH": "/usr/bin:/bin", "GATEWAY": gateway},
        capture_output=True, timeout=60,
    )
    print(f"the recipe in {workdir.name}: exit {done.returncode}, {done.stdout[:300]!r} {done.stderr[-300:]!r}")
    assert done.returncode == 0, done.stderr
    answer: dict[str, object] = orjson.loads(done.stdout)
    return answer


@pytest.mark.skipif(not all(shutil.which(tool) for tool in ("openssl", "jq", "curl", "xxd")), reason="the recipe's tools")
async def test_a_key_added_with_carriers_add_key_signs_by_hand_with_openssl(
    hub_settings: Callable[..., Awaitable[Settings]], tmp_path: Path
) -> None:
    settings = await hub_settings()
    registry = tmp_path / "carriers.json"
    shutil.copyfile(DEFAULT_CARRIERS, registry)
    env = {**env_of(settings), "MMHUB_CARRIERS": str(registry)}
    ed25519 = new_key(tmp_path / "ed25519", "by-hand-ed", "ed25519")
    hmac = new_key(tmp_path / "hmac", "by-hand-mac", "hmac-sha256")
    unregistered = new_key(tmp_path / "unregistered", "never-added", "ed25519")
    for workdir in (ed25519, hmac):
        code, lines, _ = mmhub(["carriers", "add-key", "--carrier", CARRIER, str(workdir / "entry.json")], env, tmp_path)
        assert code == 0
        assert "read the registry at start-up: restart `mmhub gateway` and `mmhub worker`" in lines[-1]
    assert {"by-hand-ed", "by-hand-mac"} <= {k.key_id for k in load_registry(registry).carrier(CARRIER).keys}  # type: ignore[union-attr]
    code, lines, _ = mmhub(["carriers", "add-key", "--carrier", CARRIER, str(ed25519 / "entry.json")], env, tmp_path)
    assert code == 1 and "key_id by-hand-ed appears more than once; nothing written" in lines[-1]

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    gateway = HubProcess("gateway", settings, tmp_path / "gw", tmp_path / "gateway.log", extra_env=env, args=["--port", str(port)])
    gateway.start()
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            await wait_for_gateway(session, base, gateway)
        first = signed_by_hand(ed25519, base)
        assert (first["accepted"], first["rejected"]) == (len(LINES), 0), first
        again = signed_by_hand(hmac, base)  # the same events again: duplicates, so the signature was accepted
        assert (again["accepted"], again["duplicates"], again["rejected"]) == (0, len(LINES), 0), again
        refused = signed_by_hand(unregistered, base)  # the control: a key that was never added
        assert refused == {"error": "unknown_key", "reason": f"carrier {CARRIER} has no key 'never-added'"}
    finally:
        gateway.stop()
