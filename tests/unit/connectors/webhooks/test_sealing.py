"""Sealing webhook secrets: what opens, what does not, and how a keyring is read or, for the dev stack, made."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest

from connectors.webhooks.sealing import DEV_KEYS, KeyProblem, key_id, load_keyring, new_key_line, parse_keyring

OLD = "old " + base64.b64encode(b"o" * 32).decode()
NEW = "new " + base64.b64encode(b"n" * 32).decode()


def test_a_sealed_secret_opens_only_under_its_key_and_as_its_own_subscriptions() -> None:
    keys = parse_keyring(f"# the keyring\n{NEW}\n\n{OLD}  # still opens\n", "test")
    assert keys.current == "new"
    sealed = keys.seal("whsec_abc", "whs_1")
    assert b"whsec_abc" not in sealed and key_id(sealed) == "new"
    assert sealed != keys.seal("whsec_abc", "whs_1")  # a fresh nonce each time
    assert keys.open(sealed, "whs_1") == "whsec_abc"
    with pytest.raises(KeyProblem, match="does not open"):
        keys.open(sealed, "whs_2")  # moved to another subscription's row
    with pytest.raises(KeyProblem, match="sealed with key 'new', which is not in test2"):
        parse_keyring(OLD, "test2").open(sealed, "whs_1")
    wrong = parse_keyring("new " + base64.b64encode(b"x" * 32).decode(), "test3")
    with pytest.raises(KeyProblem, match="does not open with key 'new' of test3"):
        wrong.open(sealed, "whs_1")
    old_sealed = parse_keyring(OLD, "t").seal("whsec_old", "whs_1")
    assert keys.open(old_sealed, "whs_1") == "whsec_old"


@pytest.mark.parametrize(
    "text",
    ["", "# nothing\n", "k1", "k1 not-base64!", "k1 " + base64.b64encode(b"short").decode(),
     "bad/id " + base64.b64encode(b"k" * 32).decode(), f"{OLD}\n{OLD}"],
)
def test_a_malformed_keyring_is_refused(text: str) -> None:
    with pytest.raises(KeyProblem):
        parse_keyring(text, "test")


def test_new_key_lines_parse() -> None:
    keys = parse_keyring(new_key_line("k2027"), "test")
    assert keys.current == "k2027" and len(keys.keys["k2027"]) == 32


def test_the_keyring_file_named_by_the_operator(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"{NEW}\n")
    assert load_keyring({"MMHUB_WEBHOOKS_KEYS_FILE": str(path)}).current == "new"
    with pytest.raises(KeyProblem, match="nowhere"):
        load_keyring({"MMHUB_WEBHOOKS_KEYS_FILE": str(tmp_path / "nowhere")})


def test_a_dev_key_only_where_the_dev_stack_runs(tmp_path: Path) -> None:
    with pytest.raises(KeyProblem, match="no key to seal webhook secrets with"):
        load_keyring({"MMHUB_HOME": str(tmp_path)})
    (tmp_path / "run").mkdir()
    made = load_keyring({"MMHUB_HOME": str(tmp_path)})
    again = load_keyring({"MMHUB_HOME": str(tmp_path)})
    assert made.keys == again.keys and made.current == "dev"
    path = tmp_path / "run" / DEV_KEYS
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and "development only" in path.read_text()
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [DEV_KEYS]  # no scratch file left
