# The whole set-up on a fresh machine with Python 3.11+ and make:
#   make run    install, migrate the SQLite database under ./var/, load demo data, serve :8000
#   make test   install test tools and run the suite
PYTHON ?= python3
VENV := .venv
UV_VERSION := 0.13.8
UV := $(VENV)/bin/uv
# --inexact: leave uv itself (installed into the venv by pip) in place.
SYNC := UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --frozen --inexact --quiet

.PHONY: run test lint clean

$(UV):
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

run: $(UV)
	$(SYNC) --no-dev
	$(VENV)/bin/aiqleads db upgrade
	$(VENV)/bin/aiqleads demo load --if-empty
	$(VENV)/bin/aiqleads serve

test: $(UV)
	$(SYNC)
	$(VENV)/bin/pytest

lint: $(UV)
	$(SYNC)
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
