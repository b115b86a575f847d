# mmhub developer entry points (GNU make).
#   make venv    .venv with the package installed editable, plus dev extras
#   make up      start Kafka + Postgres (infra/dev.sh); make down stops them
#   make test    venv + up + browser, then pytest (the browser tests must run: MMHUB_REQUIRE_BROWSER=1)
#   make browser Debian's Chromium for the browser tests (infra/dev.sh browser)
#   make promtool Debian's Prometheus, whose promtool checks the alert rules (infra/dev.sh promtool)
#   make demo    venv + up, then `mmhub demo`
#   make bench   venv + up, then the pipeline benchmark
#   make clean   remove .venv (the Kafka jar cache under ~/.cache/mmhub stays)

SHELL := /bin/bash
.DEFAULT_GOAL := test

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
STAMP  := $(VENV)/.installed

.PHONY: venv up down browser promtool test demo bench clean

venv: $(STAMP)

# re-install only when pyproject.toml is newer than the stamp
$(STAMP): pyproject.toml
	@test -x $(VENV)/bin/python || { echo "[make] creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	$(VENV)/bin/python -m pip install -q -e '.[dev]'
	@touch $@

up:
	bash infra/dev.sh up

down:
	bash infra/dev.sh down

browser:
	bash infra/dev.sh browser

promtool:
	bash infra/dev.sh promtool

test: venv up browser promtool
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	MMHUB_REQUIRE_BROWSER=1 MMHUB_REQUIRE_PROMTOOL=1 $(VENV)/bin/python -m pytest -q

demo: venv up
	$(VENV)/bin/mmhub demo

bench: venv up
	$(VENV)/bin/python -m bench.pipeline

clean:
	rm -rf $(VENV)
