# The two commands a newcomer runs (see README.md):
#   make demo   - the whole suite on local, embedded defaults
#   make test   - the test suite (starts its own Kafka broker, PostgreSQL, Chromium)
VENV ?= .venv
PYTEST_ARGS ?=

.PHONY: demo test test-all lint bench install system-deps

install:
	@deploy/bootstrap.sh

system-deps:
	@deploy/system-deps.sh

demo: install system-deps
	$(VENV)/bin/npusuite demo

# Two pytest-xdist workers, each with its own session services (Kafka, PostgreSQL, Chromium): much of the
# suite waits on brokers and subprocesses, so two workers finish in about 0.6 of the serial time on 2 cores.
TEST_WORKERS ?= 2

test: install system-deps
	$(VENV)/bin/python -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

# Includes the tests marked slow (minutes each), in one process: several of them measure failover and
# training under a known load.
test-all: install system-deps
	$(VENV)/bin/python -m pytest -m "slow or not slow" $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
