# Two commands on a fresh machine; each installs what it needs first (once: later calls reuse it):
#
#   make demo    the main job on the embedded default, offline: generate a small Cu set, load it, train FLARE
#                and NequIP, write the report (into ./tm23-demo; DEMO_ARGS="--budget 30" passes options)
#   make test    the test suite: SLURM for its tier (scripts/install_slurm.sh, root + apt), the core tier on a
#                core-only install, then everything (PYTEST_ARGS="-x" ...)
#
# Set-up is the README's step-by-step install: a venv in the checkout (.venv), torch pinned to the CPU build,
# the package with all its extras, FLARE built offline; .venv-core holds the core install for the core tier.
# On stock PyPI, `pip install torch==2.13.0` gives the CUDA build on Linux; for CPU only, pass
# TORCH_INDEX=https://download.pytorch.org/whl/cpu.

PYTHON ?= python3
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
VENV := .venv
CORE_VENV := .venv-core
INSTALLED := $(VENV)/.tm23-installed
FLARE_INSTALLED := $(VENV)/.tm23-flare
CORE_INSTALLED := $(CORE_VENV)/.tm23-installed

.PHONY: demo test setup
.DELETE_ON_ERROR:

demo: $(INSTALLED) $(FLARE_INSTALLED)
	$(VENV)/bin/tm23 demo $(DEMO_ARGS)

test: $(INSTALLED) $(FLARE_INSTALLED) $(CORE_INSTALLED)
	-bash scripts/install_slurm.sh  # the slurm tier; where it cannot install (not root, no apt) the tier skips
	$(CORE_VENV)/bin/python -m pytest tests/core $(PYTEST_ARGS)
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

setup: $(INSTALLED) $(FLARE_INSTALLED) $(CORE_INSTALLED)

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH)"
	$(VENV)/bin/pip install -e ".[all,test]"
	touch $@

$(FLARE_INSTALLED): $(INSTALLED) baselines/data/flare/install_flare.sh
	PYTHON=$(VENV)/bin/python bash scripts/install_flare.sh
	touch $@

$(CORE_INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(CORE_VENV)
	$(CORE_VENV)/bin/pip install -e ".[test]"
	touch $@
