# The two commands a new user needs: `make demo` and `make test`.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test test-fast test-kafka test-kafka-3.9 lint typecheck demo kafka-up kafka-down bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

## Unit, property and agent tests: no broker needed.
test-fast: $(STAMP)
	$(BIN)/pytest tests/unit tests/property tests/agents -q

## The whole suite: lint, types, then every tier; starts a local broker (Kafka 4.4.0) if none is running.
test: lint typecheck
	bash scripts/test.sh

## The integration tier against another Kafka version, on a broker of its own (port 9392):
## `make test-kafka KAFKA_VERSION=4.3.1`; `make test-kafka-3.9` runs it against 3.9.1.
test-kafka: $(STAMP)
	bash scripts/test-kafka.sh $(or $(KAFKA_VERSION),4.4.0)

test-kafka-3.9: $(STAMP)
	bash scripts/test-kafka.sh 3.9.1

kafka-up:
	bash scripts/kafka.sh up

kafka-down:
	bash scripts/kafka.sh down

demo: $(STAMP)
	bash scripts/demo.sh

## Every throughput target in one run (needs a broker: `make kafka-up`; about 15 min).
bench: $(STAMP)
	$(BIN)/python -m bench.targets

clean:
	rm -rf .attribution-data bench/out .pytest_cache .mypy_cache .ruff_cache
