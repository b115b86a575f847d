"""The layers hold: each package imports only what its layer may (README, "Architecture").

hubconf (settings, topic and header names) is the bottom: standard library only. schemas adds pydantic (and python-stdnum for identifiers' check characters). streams is
pure: the layers below, pydantic and orjson, and none of the standard library's I/O. runtime (the stage loop over aiokafka and RocksDB) knows only hubconf. connectors are the edges and
never import the CLI (mmhub) or the faust wiring (worker); the worker never imports the CLI.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# I/O and process control in the standard library: not for the pure layers.
STDLIB_IO = {
    "asyncio", "os", "socket", "ssl", "subprocess", "shutil", "tempfile", "http", "urllib", "sqlite3", "selectors",
    "signal", "threading", "multiprocessing", "concurrent", "logging",
}  # fmt: skip
STDLIB = set(sys.stdlib_module_names)


def imported(source: str) -> set[str]:
    """The top-level names of every module `source` imports, at any depth (lazy imports in functions too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: the package itself
                names.add("<relative>")
            elif node.module is not None:
                names.add(node.module.split(".")[0])
    return names


def _pure(allowed_project: set[str], third_party: set[str]) -> set[str]:
    return allowed_project | third_party | (STDLIB - STDLIB_IO)


# Per package: the only top-level modules it may import (None: anything but the packages in FORBIDDEN).
ALLOWED: dict[str, set[str] | None] = {
    "hubconf": STDLIB | {"hubconf"},
    "schemas": STDLIB | {"hubconf", "schemas", "pydantic", "pydantic_core", "stdnum"},
    "streams": _pure({"hubconf", "schemas", "streams"}, {"pydantic", "orjson"}),
    "runtime": None,
    "connectors": None,
    "worker": None,
}
FORBIDDEN: dict[str, set[str]] = {
    "hubconf": {"schemas", "streams", "runtime", "connectors", "worker", "mmhub", "bench"},
    "schemas": {"streams", "runtime", "connectors", "worker", "mmhub", "bench"},
    "streams": {"runtime", "connectors", "worker", "mmhub", "bench"},
    "runtime": {"schemas", "streams", "connectors", "worker", "mmhub", "bench"},
    "connectors": {"worker", "mmhub", "bench"},
    "worker": {"mmhub", "bench"},
}


def violations(package: str, source: str) -> list[str]:
    """What `source`, a module of `package`, imports that its layer may not."""
    names = imported(source)
    bad = names & FORBIDDEN[package]
    if "<relative>" in names:
        bad.add("<relative>")  # imports name their layer in full, so this test can read them
    allowed = ALLOWED[package]
    if allowed is not None:
        bad |= names - allowed - {"<relative>"}
    return sorted(bad)


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_each_package_imports_only_what_its_layer_may(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no module found in {package}/"
    found = {
        str(path.relative_to(ROOT)): bad for path in files if (bad := violations(package, path.read_text()))
    }
    assert found == {}


@pytest.mark.parametrize(
    ("package", "source", "expected"),
    [
        ("streams", "import faust\n", ["faust"]),
        ("streams", "def f():\n    from aiokafka import AIOKafkaProducer\n", ["aiokafka"]),
        ("streams", "import os.path\n", ["os"]),
        ("streams", "from asyncpg import Pool\n", ["asyncpg"]),
        ("streams", "from worker.app import create_app\n", ["worker"]),
        ("streams", "from connectors.parties import load_parties\n", ["connectors"]),
        ("schemas", "from streams.merge import fold\n", ["streams"]),
        ("schemas", "import orjson\n", ["orjson"]),
        ("hubconf", "from schemas.events import HubEvent\n", ["schemas"]),
        ("hubconf", "import pydantic\n", ["pydantic"]),
        ("connectors", "from mmhub.cli import main\n", ["mmhub"]),
        ("connectors", "import worker.fetching\n", ["worker"]),
        ("worker", "from mmhub import demo\n", ["mmhub"]),
        ("streams", "from . import merge\n", ["<relative>"]),
    ],
)
def test_a_forbidden_import_is_caught(package: str, source: str, expected: list[str]) -> None:
    assert violations(package, source) == expected


@pytest.mark.parametrize(
    ("package", "source"),
    [
        ("streams", "from hubconf.topics import SHARE_AUDIENCES\nimport orjson\nfrom datetime import datetime\n"),
        ("schemas", "from pydantic import BaseModel\nfrom decimal import Decimal\n"),
        ("connectors", "from hubconf.settings import Settings\nimport aiokafka\nfrom streams.merge import fold\n"),
        ("hubconf", "import os\nfrom hubconf.topics import Topics\n"),
    ],
)
def test_what_a_layer_may_import_passes(package: str, source: str) -> None:
    assert violations(package, source) == []
