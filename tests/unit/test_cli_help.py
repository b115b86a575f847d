"""The help a newcomer reads: every command says what it is for, who uses it and gives an example; every option has
help; `mmhub --help` groups the commands by who uses them and lists the exit codes; `mmhub help env` and README's
table name every MMHUB_* setting the code reads; `dev reset` asks before it deletes."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from connectors.webhooks.delivery import WebhookConfig
from mmhub.cli import parser
from mmhub.entry import EXIT_CODES
from mmhub.helptext import ENV, GROUPS

REPO = Path(__file__).resolve().parents[2]


def commands(top: argparse.ArgumentParser, path: str = "") -> list[tuple[str, argparse.ArgumentParser]]:
    found = []
    for action in top._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found.append((f"{path} {name}".strip(), child))
                found += commands(child, f"{path} {name}".strip())
    return found


ALL = commands(parser())


@pytest.mark.parametrize(("path", "command"), ALL, ids=[path for path, _ in ALL])
def test_every_command_says_what_it_is_for_who_uses_it_and_gives_an_example(
    path: str, command: argparse.ArgumentParser
) -> None:
    text = command.format_help()
    assert command.description and "Who uses it: " in command.description, text
    example = re.search(r"example:\n  (mmhub .+)\n", text)
    assert example is not None, text
    assert example.group(1).split()[1] == path.split()[0]
    assert "exit codes" in text
    for action in command._actions:
        if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            assert action.help, f"mmhub {path}: {action.option_strings or action.dest} has no help"


def test_the_top_help_groups_every_command_by_who_uses_it_and_lists_the_exit_codes() -> None:
    text = parser().format_help()
    print(text)
    for title, _ in GROUPS:
        assert f"for {title}:" in text
    assert "other:" not in text, "every command belongs to a group"
    top_level = {path for path, _ in ALL if " " not in path}
    listed = {line.split()[0] for line in text.splitlines() if line.startswith("  ") and not line.startswith("   ")}
    assert top_level <= listed
    for code, meaning in EXIT_CODES:
        assert f"{code:>3}  {meaning}" in text
    assert "mmhub help env" in text


def _names_in(path: Path) -> set[str]:
    return set(re.findall(r"MMHUB_[A-Z0-9_]*[A-Z0-9]", path.read_text()))


def test_help_env_and_readme_name_every_setting_the_code_reads() -> None:
    read = _names_in(REPO / "hubconf" / "settings.py") | _names_in(REPO / "infra" / "dev.sh")
    read |= {f"MMHUB_WEBHOOKS_{field.name.upper()}" for field in fields(WebhookConfig)} | {"MMHUB_WEBHOOKS_KEYS_FILE"}
    documented = {name for name, _, _ in ENV}
    assert read <= documented, f"not in `mmhub help env`: {sorted(read - documented)}"

    page = subprocess.run([sys.executable, "-m", "mmhub.cli", "help", "env"], capture_output=True, check=True).stdout
    assert {name for name in documented if name.encode() not in page} == set()

    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("| `MMHUB_KAFKA` |") :]
    table = table[: table.index("\n\n")]
    in_table = set(re.findall(r"`(MMHUB_[A-Z0-9_]+)`", table))
    in_table |= {f"MMHUB_WEBHOOKS{suffix}" for suffix in re.findall(r"`(_[A-Z0-9_]+)`", table)}
    assert read <= in_table, f"not in README's variable table: {sorted(read - in_table)}"


def test_dev_reset_deletes_nothing_without_yes() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mmhub.cli", "dev", "reset"], capture_output=True, stdin=subprocess.DEVNULL, timeout=60
    )
    lines = done.stderr.decode().splitlines()
    assert done.returncode == 2
    assert "DELETES their data" in lines[0]
    assert lines[-1] == "mmhub dev reset: nothing deleted; run it with --yes to go on"
