# The two commands of the README:
#   make demo   set up (venv, packages with the dev extra, redis-server) and run the live demo
#   make test   set up (venv, packages with the test and dev extras, redis-server, chromium) and run the whole test suite
#               in three processes on two cores (most integration tests wait on a broker, a worker or a sync round,
#               so a third process fills the waits: 8:26 against 10:24 with two; each process starts its own Tansu
#               and redis-server; a module's tests stay in one process: loadscope)
VENV ?= .venv
PYTHON ?= python3

.PHONY: demo test setup setup-test bench bench-peer system-packages system-packages-test

demo: setup
	$(VENV)/bin/kairos demo

test: setup-test
	$(VENV)/bin/python -m pytest -n 3 --dist loadscope

bench: setup-test
	$(VENV)/bin/kairos bench

# Kairos next to Quix Streams on the same events (installs the bench extra: quixstreams).
bench-peer: setup-test
	$(VENV)/bin/python -m pip install -q -e '.[bench]'
	$(VENV)/bin/kairos bench --peer quix

setup: system-packages $(VENV)/.installed
setup-test: system-packages-test $(VENV)/.installed-test

# Debian packages, installed with apt-get only when missing.
system-packages:
	bash scripts/ensure-package.sh redis-server redis-server

system-packages-test: system-packages
	bash scripts/ensure-package.sh chromium chromium

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(VENV)/bin/python
	$(VENV)/bin/python -m pip install -q -e '.[dev]'
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(VENV)/bin/python
	$(VENV)/bin/python -m pip install -q -e '.[test,dev]'
	touch $@ $(VENV)/.installed
