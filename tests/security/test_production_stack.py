"""The production stack carries no demo credentials and no secret in clear (issue 12, finding 9), and is checked
(issue 15, item 5).

docker-compose.yml cannot be run here (no Docker engine), so these read it and the Dockerfile as data: the compose
file follows the Compose Specification (its JSON Schema, vendored in vendor/compose-spec/), every secret comes from a
file that `infra/compose/secrets.sh` makes and that the code reads, each hub service is its own Kafka principal, and
the production image copies every package the hub installs and imports, nothing that is not in the repo, and no
demo credential (`examples/`: signing keys, reader tokens, the demo registry).
"""

from __future__ import annotations

import ast
import copy
import json
import re
import tomllib
from pathlib import Path
from typing import Any, Iterator

import jsonschema
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
DOCKERFILE = (REPO / "Dockerfile").read_text()
SECRETS_SCRIPT = (REPO / "infra" / "compose" / "secrets.sh").read_text()
SENSITIVE = re.compile(r"PASSWORD|SECRET|TOKEN|KEY", re.IGNORECASE)
HUB_SERVICES = ("topics", "worker", "sink", "gateway", "share", "webhooks")
COMPOSE_SPEC = json.loads((REPO / "vendor" / "compose-spec" / "compose-spec.json").read_text())
# first-party code the hub's processes run; the benchmarks (bench/) are installed by a checkout, not the image
PACKAGES = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
NOT_IN_IMAGE = {"bench"}


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


def _copied() -> list[str]:
    """The repo paths the production stage copies."""
    return [source for line in _stage("production").splitlines() if line.startswith("COPY ")
            for source in line.split()[1:-1]]


def _files(sources: list[str]) -> Iterator[Path]:
    """Every file those COPY lines put in the image (.dockerignore keeps __pycache__ out)."""
    for source in sources:
        path = REPO / source
        for found in [path] if path.is_file() else sorted(path.rglob("*")):
            if found.is_file() and "__pycache__" not in found.parts:
                yield found


def _demo_credentials() -> set[str]:
    """Every key, token and token hash of the demo (examples/): published on purpose, so never for production."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for name, value in node.items():
                if name in ("private_key", "public_key", "secret", "sha256") and isinstance(value, str):
                    found.add(value)
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for path in (REPO / "examples").rglob("*.json"):
        document = json.loads(path.read_text())
        walk(document)
        if path.name == "tokens.json":
            found.update(document["tokens"].values())
    return found


def test_docker_compose_follows_the_compose_specification() -> None:
    validator = jsonschema.Draft7Validator(COMPOSE_SPEC)
    problems = [f"{error.json_path}: {error.message}" for error in validator.iter_errors(COMPOSE)]
    assert problems == []
    # the schema is live: a misspelt key and a wrong type in a copy are both found
    broken = copy.deepcopy(COMPOSE)
    broken["services"]["worker"]["secret"] = broken["services"]["worker"].pop("secrets")
    broken["services"]["gateway"]["ports"] = "8080:8080"
    paths = sorted(error.json_path for error in validator.iter_errors(broken))
    assert paths == ["$.services.gateway.ports", "$.services.worker"], paths


def test_the_production_image_holds_every_package_the_hub_installs_and_imports() -> None:
    copied = {Path(source).parts[0] for source in _copied()}
    installed = {pattern.rstrip("*") for pattern in PACKAGES}
    # `pip install .` in the image installs only what was copied: a package left out installs nothing, and the
    # process that imports it fails at start
    assert installed - NOT_IN_IMAGE - copied == set()
    first_party = {path.name for path in REPO.iterdir() if (path / "__init__.py").is_file()}
    imported = set()
    for path in _files(sorted(copied & first_party)):
        if path.suffix == ".py":
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    imported.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    imported.add(node.module.split(".")[0])
    assert imported & first_party, "no first-party import found: the scan is broken"
    assert (imported & first_party) - copied == set()


def test_no_file_of_the_production_image_holds_a_demo_credential() -> None:
    credentials = _demo_credentials()
    assert len(credentials) > 20, "the demo's keys and tokens were not found"
    files = list(_files(_copied()))
    assert any(path.name == "settings.py" for path in files)
    leaks = [(str(path.relative_to(REPO)), secret[:12]) for path in files
             for secret in credentials if secret in path.read_text(errors="replace")]
    assert leaks == []


def test_every_mmhub_setting_the_compose_file_gives_is_read_by_the_hub() -> None:
    """A misspelt `MMHUB_*_FILE` would leave its secret unread and the service on a default."""
    code = "\n".join(path.read_text() for path in _files(_copied()) if path.suffix == ".py")
    given = {
        var for name in HUB_SERVICES for var in _environment(COMPOSE["services"][name]) if var.startswith("MMHUB_")
    }
    assert {"MMHUB_KAFKA_PASSWORD_FILE", "MMHUB_PG_PASSWORD_FILE", "MMHUB_WEBHOOKS_KEYS_FILE"} <= given
    assert sorted(var for var in given if f'"{var}"' not in code) == []
