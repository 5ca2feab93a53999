# The two commands of the README's quick start are `make run` and `make test`.
# Both create .venv and install the project into it first if needed.

VENV ?= .venv
PYTHON := $(VENV)/bin/python
export DATAENVGYM_HOME ?= $(CURDIR)/.dataenvgym
export DAGSTER_HOME ?= $(DATAENVGYM_HOME)/dagster

.PHONY: install run test ui benchmark table2 teacher-benchmark clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

run: install  ## the default experiment, offline on the CPU, with a per-skill accuracy table at the end
	$(PYTHON) -m dataenvgym_dagster run

test: install  ## the test suite (what .ci/run calls), the browser test included
	.ci/install-browser
	$(PYTHON) -m pytest

ui: install  ## the Dagster UI (webserver + daemon: automation, schedules) over the same home as `make run`
	$(PYTHON) -m dataenvgym_dagster instance
	$(VENV)/bin/dagster dev -w workspace.yaml

benchmark: install  ## stage timings of the default experiment
	$(PYTHON) benchmarks/stage_timings.py

table2: install  ## every environment with and without state, 3 seeds each (about 25 minutes)
	$(PYTHON) benchmarks/environments_table.py

teacher-benchmark: install  ## the LLM teacher client's throughput against the local test server
	$(PYTHON) benchmarks/teacher_throughput.py

clean:  ## forget every run, checkpoint and warehouse table (keeps .venv)
	rm -rf $(DATAENVGYM_HOME)
