# Stepline: `make run` starts the whole platform on this machine, `make test` proves it.
# Everything is installed from the lock file into .venv; nothing needs installing by hand.

PYTHON ?= python3
UV_VERSION := 0.13.9
UV := .tools/bin/uv
VENV := .venv
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON := $(shell command -v $(PYTHON))
FUNCTION_DIRS := $(patsubst %/func.yaml,%,$(wildcard functions/*/func.yaml))
RUNTIME_WHEEL_GLOB := stepline_runtime-*.whl

.PHONY: all install run test test-fast bench functions lint lock clean

all: install

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) uv.lock pyproject.toml runtime/pyproject.toml control-plane/pyproject.toml outbox-relay/pyproject.toml
	$(UV) sync --frozen --quiet
	touch $@

install: $(VENV)/.synced

# Each function folder must build alone (func deploy sees only the folder): the shared
# runtime goes into it as a wheel under vendor/, built here, never committed.
functions: $(VENV)/.synced
	rm -rf build/runtime && $(UV) build --quiet --wheel --package stepline-runtime --out-dir build/runtime
	for d in $(FUNCTION_DIRS); do \
	  rm -rf $$d/vendor && mkdir -p $$d/vendor && cp build/runtime/$(RUNTIME_WHEEL_GLOB) $$d/vendor/; \
	done

# the control plane's port: `make run PORT=8081` when 8080 is taken (the demo API
# listens on the same port of 127.0.0.2)
PORT := 8080

run: install ui
	$(VENV)/bin/stepline-control run --port $(PORT)

test: install functions ui browser dovecot
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/pytest

test-fast: install
	$(VENV)/bin/pytest -m "not slow"

bench: install
	$(VENV)/bin/python -m bench

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache

lock: $(UV)
	$(UV) lock

# the reference pages in docs/reference/, generated from the code (tests/test_docs.py
# fails when the committed ones differ from fresh output)
.PHONY: docs
docs: install
	$(VENV)/bin/python docs/generate.py

clean:
	rm -rf $(VENV) .tools build functions/*/vendor .stepline

# the web UI's build and the browser its tests drive
include control-plane/ui/ui.mk
# the servers the tests start for themselves (Dovecot)
include tests/servers.mk
