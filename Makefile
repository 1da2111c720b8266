# Two commands for a newcomer (as root on Debian 12):
#   make demo   installs what is needed, then lab up, deploy, failover drill with capture,
#               the app in headless Chromium (out/app.png)
#   make test   installs what is needed, then the whole test suite (lab tests included)
PY := .venv/bin/python
OUT := out

.PHONY: setup demo test lint down
$(OUT):
	mkdir -p $(OUT)

setup:
	bash scripts/setup.sh

demo: setup | $(OUT)
	$(PY) runbooks/lab.py up
	$(PY) runbooks/deploy.py --json $(OUT)/deploy.json
	$(PY) runbooks/failover_drill.py --capture --fault crash \
	    --json $(OUT)/drill.json --pcap $(OUT)/drill.pcap --png $(OUT)/drill.png
	$(PY) runbooks/db_status.py
	$(PY) runbooks/browse.py --loads 3 --screenshot $(OUT)/app.png
	@echo "demo done: lab up (make down removes it); evidence in $(OUT)/: deploy.json," \
	    "drill.pcap (open with wireshark/tshark), drill.png (timeline), drill.json," \
	    "app.png (the app in headless Chromium, by its name)"

test: setup
	.venv/bin/ruff check .
	.venv/bin/pytest -ra

lint: setup
	.venv/bin/ruff check .

down: setup
	$(PY) runbooks/lab.py down
