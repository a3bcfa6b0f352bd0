# loopkit: `make demo` runs the default closed-loop pipeline, `make test` runs the whole suite.
# Both set everything up first (idempotent: a second call only checks).
SHELL := /bin/bash
VENV  := .venv
BIN   := $(VENV)/bin
STAMP := $(VENV)/.loopkit-installed
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true
export PYTHONWARNINGS := ignore::DeprecationWarning

.PHONY: setup demo test system chromium sync-check nbtest pytest docs bench clean

# torch first, from the local CPU wheel: a bare `torch` requirement would pull GBs of CUDA packages.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

# Debian packages the suite uses, installed when missing in one apt run: headless Chromium and its driver (the docs site's
# browser test), redis-server (shared online state), PostgreSQL (a shared tracking store) and a Java runtime (Spark in
# local mode, for the features stage's engine: spark). Tests start and stop them.
DEBS := chromium:chromium chromedriver:chromium-driver redis-server:redis-server initdb:postgresql java:openjdk-17-jre-headless
system:
	@missing=""; for pair in $(DEBS); do cmd=$${pair%%:*}; pkg=$${pair##*:}; \
	  command -v $$cmd >/dev/null || ls /usr/lib/postgresql/*/bin/$$cmd >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then echo "installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi

chromium: system

demo: setup
	$(BIN)/loopkit run

# The notebooks are the source: cleaning and exporting them must change nothing.
sync-check: setup
	@before=$$(git status --porcelain -- nbs loopkit templates README.md; find nbs loopkit templates README.md -type f -not -path '*/__pycache__/*' -print0 | sort -z | xargs -0 sha1sum); \
	$(BIN)/nbdev-clean && $(BIN)/nbdev-export && $(BIN)/python -c 'from loopkit.site import write_readme; write_readme()'; \
	after=$$(git status --porcelain -- nbs loopkit templates README.md; find nbs loopkit templates README.md -type f -not -path '*/__pycache__/*' -print0 | sort -z | xargs -0 sha1sum); \
	if [ "$$before" != "$$after" ]; then echo "nbdev-clean/nbdev-export (or README from index.ipynb) changed files: commit the cleaned notebooks, the exported package and README.md"; git status --short; exit 1; fi; \
	echo "notebooks and package are in sync"

nbtest: setup
	$(BIN)/nbdev-test --n-workers 2 --timing

pytest: setup system
	$(BIN)/pytest -q --durations=25

docs: setup
	$(BIN)/loopkit docs

test: setup system sync-check nbtest docs pytest

bench: setup
	$(BIN)/python bench/bench_pipeline.py
	$(BIN)/python bench/bench_data.py

clean:
	rm -rf runs .loopkit docs/_site _proc
