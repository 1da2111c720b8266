# Two commands for a newcomer (as root on Debian 12):
#   make demo   installs what is needed, then lab up, deploy, failover drill with capture
#   make test   installs what is needed, then the whole test suite (lab tests included)
PY := .venv/bin/python
OUT := out

.PHONY: setup demo test lint down
setup:
	bash scripts/setup.sh

demo: setup
	$(PY) runbooks/lab.py up

test: setup
	.venv/bin/ruff check .
	.venv/bin/pytest -ra

lint: setup
	.venv/bin/ruff check .

down: setup
	$(PY) runbooks/lab.py down
