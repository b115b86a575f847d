"""A worker process runs the stages its settings name (MMHUB_WORKER_STAGES), and says so."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from hubconf.settings import Settings
from worker.app import banner, create_app


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    monkeypatch.setenv("MMHUB_HOME", str(tmp_path))
    monkeypatch.setenv("MMHUB_KAFKA_SECURITY", "plaintext")
    monkeypatch.delenv("MMHUB_WORKER_STAGES", raising=False)
    return replace(Settings.from_env("worker"), namespace="unit", data_dir=tmp_path / "data")


@pytest.mark.parametrize(
    ("chosen", "clock"),
    [
        (("connect", "resolve", "merge"), "presumed-loss clock every 600 s"),
        (("connect",), "presumed-loss clock: not here (it reads the merge stage's deadlines)"),
        (("resolve", "merge"), "presumed-loss clock every 600 s"),
    ],
)
def test_a_worker_runs_only_the_stages_it_is_given(settings: Settings, chosen: tuple[str, ...], clock: str) -> None:
    app = create_app(replace(settings, worker_stages=chosen))
    stages = app.mmhub_stages  # type: ignore[attr-defined]
    assert tuple(stage.name for stage in stages) == chosen
    lines = banner(settings, stages, 0, "127.0.0.1")
    assert lines[0].startswith(f"mmhub worker unit.mmhub: stages {', '.join(chosen)} on the stage runtime")
    assert [line.split(":")[0] for line in lines if line.startswith("stage ")] == [f"stage {name}" for name in chosen]
    assert lines[-1].startswith(clock)
