"""The production stack carries no demo credentials and no secret in clear (issue 12, finding 9).

docker-compose.yml cannot be run here (no Docker engine), so these read it and the Dockerfile as data: every
secret comes from a file that `infra/compose/secrets.sh` makes, each hub service is its own Kafka principal, and the
production image copies neither `examples/` (demo keys and reader tokens) nor anything that is not in the repo.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
DOCKERFILE = (REPO / "Dockerfile").read_text()
SECRETS_SCRIPT = (REPO / "infra" / "compose" / "secrets.sh").read_text()
SENSITIVE = re.compile(r"PASSWORD|SECRET|TOKEN|KEY", re.IGNORECASE)
HUB_SERVICES = ("topics", "worker", "sink", "gateway", "share", "webhooks")


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _stage(name: str) -> str:
    """The Dockerfile's lines from `FROM … AS name` to the next FROM."""
    match = re.search(rf"^FROM [^\n]+ AS {name}\n(.*?)(?=^FROM |\Z)", DOCKERFILE, re.S | re.M)
    assert match, f"no stage {name!r} in the Dockerfile"
    return match.group(1)


def test_no_service_is_given_a_secret_in_clear_and_every_secret_file_is_made_by_the_script() -> None:
    declared = COMPOSE["secrets"]
    for name, service in COMPOSE["services"].items():
        for var, value in _environment(service).items():
            if SENSITIVE.search(var):
                assert var.endswith("_FILE") and value.startswith("/run/secrets/"), (name, var, value)
                assert value.removeprefix("/run/secrets/") in service["secrets"], (name, var)
            assert not re.search(r"://[^/@:]+:[^/@]+@", value), f"{name}: {var} has a password in its URL"
        for secret in service.get("secrets", []):
            assert secret in declared, (name, secret)
    for secret, source in declared.items():
        made = Path(source["file"]).name
        assert source["file"].startswith("./secrets/") and made in SECRETS_SCRIPT, (secret, source)


def test_each_hub_service_is_its_own_kafka_principal_with_its_own_password() -> None:
    principals = {}
    for name in HUB_SERVICES:
        env = _environment(COMPOSE["services"][name])
        user = env["MMHUB_KAFKA_USER"]
        assert env["MMHUB_KAFKA_SECURITY"] == "sasl_scram", name
        assert env["MMHUB_KAFKA_PASSWORD_FILE"] == f"/run/secrets/kafka-{user}", name
        principals[name] = user
    assert len(set(principals.values())) == len(principals), principals
    assert principals["topics"] == "admin" and all(u != "admin" for n, u in principals.items() if n != "topics")


def test_the_services_that_seal_webhook_secrets_get_the_operators_keyring() -> None:
    for name in ("gateway", "webhooks"):
        assert _environment(COMPOSE["services"][name])["MMHUB_WEBHOOKS_KEYS_FILE"] == "/run/secrets/webhook-keys"


def test_the_production_image_copies_what_exists_and_no_demo_credentials() -> None:
    production = _stage("production")
    copies = [line.split()[1:-1] for line in production.splitlines() if line.startswith("COPY ")]
    assert copies, "the production stage copies nothing"
    for sources in copies:
        for source in sources:
            assert (REPO / source).exists(), source
            assert not source.startswith("examples"), "the production image carries the demo registry and keys"
    assert "examples" not in production
    assert "MMHUB_CARRIERS" not in production and "MMHUB_PARTIES" not in production
