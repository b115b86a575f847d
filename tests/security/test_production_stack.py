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
import pytest
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


# --- what each service runs, where Prometheus finds it, and how compose knows it is alive -------------------------

PROMETHEUS = yaml.safe_load((REPO / "infra" / "monitoring" / "prometheus.yml").read_text())
GRAFANA = REPO / "infra" / "monitoring" / "grafana"
# the hub services that keep running (all but `topics`, which creates the topics and ACLs and exits)
LONG_RUNNING = ("worker", "sink", "gateway", "share", "webhooks")


def _command(name: str) -> list[str]:
    return [str(word) for word in COMPOSE["services"][name]["command"]]


def _mounts(name: str) -> dict[str, Path]:
    """A service's bind mounts of files in the repo: the path inside the container -> the file in the repo."""
    mounts = {}
    for volume in COMPOSE["services"][name].get("volumes", []):
        source, _, rest = str(volume).partition(":")
        if source.startswith("./"):
            mounts[rest.split(":")[0]] = REPO / source
    return mounts


def test_every_hub_service_runs_an_mmhub_subcommand() -> None:
    from mmhub.cli import parser

    assert re.search(r'^ENTRYPOINT \["mmhub"\]$', _stage("production"), re.M), "the image runs `mmhub`"
    for name in HUB_SERVICES:
        args = parser().parse_args(_command(name))  # argparse exits on an unknown command or option
        assert args.command == _command(name)[0] and callable(args.run), name
    # the check is live: a misspelt command or option is refused
    for wrong in (["workr"], ["gateway", "--prot", "8080"], ["webhooks", "runn"]):
        with pytest.raises(SystemExit):
            parser().parse_args(wrong)


def test_prometheus_scrapes_each_long_running_service_on_its_metrics_port() -> None:
    from runtime.metrics import DEFAULT_PORTS, port_for

    scraped = {
        name: target["port"]
        for job in PROMETHEUS["scrape_configs"]
        for target in job["dns_sd_configs"]
        for name in target["names"]
    }
    served = {}
    for name in LONG_RUNNING:
        env = _environment(COMPOSE["services"][name])
        assert env["MMHUB_METRICS_HOST"] == "0.0.0.0", f"{name}: /metrics must be reachable from the prometheus service"
        served[name] = port_for(_command(name)[0], env)
    assert scraped == served
    assert sorted(served.values()) == sorted(DEFAULT_PORTS.values()) == list(range(9401, 9406))


def test_prometheus_and_grafana_find_the_files_they_are_given() -> None:
    prometheus = COMPOSE["services"]["prometheus"]
    mounts = _mounts("prometheus")
    [config] = [arg.split("=", 1)[1] for arg in prometheus["command"] if arg.startswith("--config.file=")]
    assert mounts[config] == REPO / "infra" / "monitoring" / "prometheus.yml"
    for rules in PROMETHEUS["rule_files"]:  # relative to the configuration file's directory
        assert mounts[str(Path(config).parent / rules)] == REPO / "infra" / "monitoring" / "alerts.yml"
    grafana = _mounts("grafana")
    assert grafana["/etc/grafana/provisioning"] == GRAFANA / "provisioning"
    [provider] = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "mmhub.yml").read_text())["providers"]
    assert grafana[provider["options"]["path"]] == GRAFANA / "dashboards"
    assert (GRAFANA / "dashboards" / "mmhub.json").is_file()
    [source] = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert source["url"] == "http://prometheus:9090" and "prometheus" in COMPOSE["services"]
    assert any(str(port).endswith(":9090") for port in prometheus["ports"])
    dashboard = json.loads((GRAFANA / "dashboards" / "mmhub.json").read_text())
    assert {panel["datasource"]["uid"] for panel in dashboard["panels"]} == {source["uid"]}


def _probe(name: str) -> tuple[str, str]:
    """(the probe's Python code, its URL) from a service's healthcheck."""
    test = [str(word) for word in COMPOSE["services"][name]["healthcheck"]["test"]]
    assert test[:3] == ["CMD", "python", "-c"] and len(test) == 5, test
    return test[3], test[4]


def test_each_long_running_service_has_a_healthcheck_on_its_own_port() -> None:
    from runtime.metrics import port_for

    for name in ("kafka", "postgres", *LONG_RUNNING):
        assert "healthcheck" in COMPOSE["services"][name], name
    for name in LONG_RUNNING:
        _, url = _probe(name)
        command = _command(name)
        if name == "gateway":
            assert url == f"http://127.0.0.1:{command[command.index('--port') + 1]}/healthz"
        else:
            assert url == f"http://127.0.0.1:{port_for(command[0], _environment(COMPOSE['services'][name]))}/metrics"


def test_the_healthcheck_probe_passes_on_an_answer_and_fails_on_silence_or_an_error() -> None:
    """The probe itself, run as compose runs it (python -c CODE URL), against a real /metrics server, a gateway's
    503 and a port nothing listens on."""
    import socket
    import subprocess
    import sys
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from prometheus_client import start_http_server

    code, _ = _probe("worker")
    assert {_probe(name)[0] for name in LONG_RUNNING} == {code}

    def exit_code(url: str) -> int:
        return subprocess.run([sys.executable, "-c", code, url], capture_output=True, timeout=30).returncode

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    server, thread = start_http_server(0, addr="127.0.0.1")
    try:
        assert exit_code(f"http://127.0.0.1:{server.server_port}/metrics") == 0
    finally:
        server.shutdown()
        thread.join()

    class Down(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.send_response(503)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    down = ThreadingHTTPServer(("127.0.0.1", 0), Down)
    threading.Thread(target=down.serve_forever, daemon=True).start()
    try:
        assert exit_code(f"http://127.0.0.1:{down.server_port}/healthz") != 0
    finally:
        down.shutdown()
    assert exit_code(f"http://127.0.0.1:{free}/metrics") != 0
