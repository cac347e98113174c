# streamscore: `make run` for the demo, `make test` for the whole suite. Every target is safe to rerun.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
RUN_STAMP := $(VENV)/.installed-run
PIP    := PYTHONWARNINGS=ignore $(BIN)/pip install -q --disable-pip-version-check
QUIX   := .venv-quix
PYTEST_ARGS ?=
# make test runs pytest in this many processes (pytest-xdist), each with its own broker and registry
PYTEST_WORKERS ?= 2

.PHONY: help venv quix-venv kafka registry k8s-tools fault-tools run test docs chaos dashboard drift-plot unit integration lint format bench bench-quick up down clean

help:
	@echo "make run      demo: embedded Kafka (unless KAFKA_BOOTSTRAP_SERVERS is set), worker, producer"
	@echo "make test     lint, the docs site, then unit and integration tests against a real Kafka broker"
	@echo "make docs     the documentation site into site/ (mkdocs build --strict); .venv/bin/mkdocs serve to edit"
	@echo "make chaos    the long fault-injection suite and other chaos tests; results to bench/results/faults-<date>.json"
	@echo "make lint     ruff check and format check"
	@echo "make k8s-tools  helm, kubeconform and the schemas the Helm chart's tests use (once, into ~/.cache)"
	@echo "make fault-tools  Toxiproxy, for the network faults of make chaos (once, into ~/.cache)"
	@echo "make registry   Apicurio Registry from Maven Central, the tests' and benchmarks' schema registry (once, into ~/.cache)"
	@echo "make bench    the benchmark ladder; make bench-quick for a short run"
	@echo "make dashboard  the dashboard's panels from a real run, into docs/dashboard.png"
	@echo "make drift-plot drift detection delays and false alarms over seeds, into docs/drift.png"
	@echo "make up/down  the docker compose stack (needs a Docker engine)"

# make run installs the package alone; the tests, benchmarks and docs add their extras. The build
# backend's warnings are not the user's business: pip is asked to keep them quiet.
$(RUN_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) -e .
	touch $@

$(STAMP): $(RUN_STAMP)
	$(PIP) -e '.[test,train,bench,mlflow,docs]'
	touch $@

venv: $(STAMP)

# The site from docs/ and mkdocs.yml; the reference and results pages are generated while it builds.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 DISABLE_MKDOCS_2_WARNING=true $(BIN)/mkdocs build --strict --quiet

# The Quix Streams peer of the benchmark ladder runs from a venv of its own (it pins an older
# confluent-kafka); only the benchmarks need it.
$(QUIX)/.installed: bench/quix-requirements.txt
	test -x $(QUIX)/bin/python || $(PYTHON) -m venv $(QUIX)
	$(QUIX)/bin/pip install -q --upgrade pip
	$(QUIX)/bin/pip install -q -r bench/quix-requirements.txt
	touch $@

quix-venv: $(QUIX)/.installed

# Apache Kafka's jars from Maven Central into the per-user cache (skipped when a broker is given).
kafka: $(RUN_STAMP)
	@if [ -z "$$KAFKA_BOOTSTRAP_SERVERS" ]; then $(BIN)/streamscore broker --fetch-only >/dev/null; fi

# Apicurio Registry from Maven Central into the per-user cache: the tests' schema registry, the
# benchmark's for its Avro and JSON Schema rungs, and the demo's when STREAMSCORE_INPUT_FORMAT or
# STREAMSCORE_OUTPUT_FORMAT asks for a registered format.
registry: $(RUN_STAMP)
	$(BIN)/python -m stream.tools.apicurio >/dev/null

# A random secret per run unless STREAMSCORE_SECRET is set: the demo's keys live only as long as it.
run: kafka
	STREAMSCORE_SECRET="$${STREAMSCORE_SECRET:-$$($(BIN)/python -c 'import secrets; print(secrets.token_hex(32))')}" \
		$(BIN)/streamscore run

# Helm, kubeconform and the Kubernetes, KEDA and prometheus-operator schemas that the Helm chart's
# tests use, at the versions pinned in tests/k8s_tools.py, built and converted from the Go module
# proxy into ~/.cache/streamscore/k8s once. Without Go it says so and the chart's tests skip;
# K8S_TOOLS_ARGS=--fetch-go (as .ci/run does) fetches the Go toolchain from the proxy first.
K8S_TOOLS_ARGS ?=
k8s-tools: $(STAMP)
	$(BIN)/python tests/k8s_tools.py $(K8S_TOOLS_ARGS)

fault-tools: $(STAMP)
	$(BIN)/python tests/toxiproxy.py

test: lint docs kafka registry k8s-tools
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadgroup --no-loadscope-reorder --durations=12 $(PYTEST_ARGS)

# Faults at the long sizes (several kills, both guarantees) and every test marked chaos.
chaos: kafka registry fault-tools
	$(PIP) -e '.[test,train,bench,mlflow,docs,fuzz]'
	STREAMSCORE_CHAOS=1 STREAMSCORE_FAULTS_JSON=bench/results/faults-$$(date +%F).json \
		$(BIN)/pytest -m "faults or chaos" $(PYTEST_ARGS)

unit: $(STAMP)
	$(BIN)/pytest -m unit $(PYTEST_ARGS)

integration: $(STAMP) kafka registry
	$(BIN)/pytest -m integration $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP) kafka registry quix-venv
	$(BIN)/python -m bench

bench-quick: $(STAMP) kafka registry quix-venv
	$(BIN)/python -m bench --quick

dashboard: $(STAMP) kafka
	$(BIN)/python -m bench.dashboard

drift-plot: $(STAMP)
	$(BIN)/python -m bench.drift

# The stack's secret lives in .env (made once, kept across up/down so drift state stays readable).
up:
	test -s .env || echo "STREAMSCORE_SECRET=$$(python3 -c 'import secrets; print(secrets.token_hex(32))')" > .env
	docker compose up -d --build

down:
	docker compose down

clean:
	rm -rf $(VENV) $(QUIX) .pytest_cache .ruff_cache .hypothesis *.egg-info site
