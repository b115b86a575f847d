"""Running `mmhub` as a user does, in a subprocess, for the command-line tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from hubconf.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def env_of(settings: Settings) -> dict[str, str]:
    """The environment that points `mmhub` at the test's namespace and schema."""
    return {
        "MMHUB_KAFKA": settings.kafka,
        "MMHUB_PG_DSN": settings.pg_dsn,
        "MMHUB_NAMESPACE": settings.namespace,
        "MMHUB_PG_SCHEMA": settings.pg_schema,
    }


def mmhub(
    args: list[str], env: dict[str, str], cwd: Path, timeout: float = 120, stdin: bytes | None = None
) -> tuple[int, list[str], bytes]:
    """Run `mmhub ARGS` with `env` over the test's own; (exit code, the lines on stderr, stdout)."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "mmhub.cli", *args],
        # no /metrics unless a test asks: the default ports (9401-9405) may be another hub's on this host
        env={**os.environ, "MMHUB_DATA_DIR": str(cwd / "data"), "MMHUB_METRICS_PORT": "0", **env},
        capture_output=True,
        timeout=timeout,
        cwd=cwd,
        input=stdin,
    )
    lines = done.stderr.decode().splitlines()
    print(f"mmhub {' '.join(args)} -> {done.returncode} in {time.monotonic() - started:.1f}s; stderr: {lines[-4:]}")
    return done.returncode, lines, done.stdout
