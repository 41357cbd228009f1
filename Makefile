# The two commands a newcomer needs: `make demo` and `make test`. See README.md.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test setup system lint bench clean

demo: $(STAMP)
	$(BIN)/medicobus demo

test: system $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy medicobus onboard ground
	$(BIN)/pytest

setup: $(STAMP)

system:
	@scripts/system-packages.sh

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy medicobus onboard ground

bench: system $(STAMP)
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.kiosk_startup
	$(BIN)/python -m bench.cellular_bytes
	$(BIN)/python -m bench.report_year

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
