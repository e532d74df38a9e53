# Two commands for a fresh machine: `make run` and `make test`. Everything else is bootstrap.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run test install migrate bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip "setuptools>=77" wheel
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

migrate: install
	$(PY) manage.py migrate --noinput

run: migrate
	OMNIDESK_DEBUG=1 $(PY) manage.py seed_demo
	OMNIDESK_DEBUG=1 $(PY) manage.py serve --demo-traffic

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

bench: install
	$(PY) bench/ingest.py

clean:
	rm -rf $(VENV) db.sqlite3 media
