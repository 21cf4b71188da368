# The two commands of the README:
#   make demo   set up (venv, packages, redis-server) and run the live demo
#   make test   set up (venv, packages, redis-server) and run the whole test suite
VENV ?= .venv
PYTHON ?= python3

.PHONY: demo test setup setup-test bench

demo: setup
	$(VENV)/bin/kairos demo

test: setup-test
	$(VENV)/bin/python -m pytest

bench: setup-test
	$(VENV)/bin/kairos bench

setup: $(VENV)/.installed
setup-test: $(VENV)/.installed-test

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(VENV)/bin/python
	bash scripts/ensure-redis.sh
	$(VENV)/bin/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(VENV)/bin/python
	bash scripts/ensure-redis.sh
	$(VENV)/bin/python -m pip install -q -e '.[test]'
	touch $@ $(VENV)/.installed
