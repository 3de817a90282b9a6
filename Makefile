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

test: install system-deps
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# Includes the tests marked slow (minutes each).
test-all: install system-deps
	$(VENV)/bin/python -m pytest -m "slow or not slow" $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
