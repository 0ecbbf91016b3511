# Two commands on a fresh machine; each installs what it needs first (once: later calls reuse it):
#
#   make demo    the main job on the embedded default, offline: generate a small Cu set, load it, train FLARE
#                and NequIP, write the report (into ./tm23-demo; DEMO_ARGS="--budget 30" passes options)
#   make test    the test suite: SLURM for its tier (scripts/install_slurm.sh, root + apt), MACE, MatterSim, ORB
#                and fairchem (--no-deps, below), the core tier on a core-only install, then everything
#                (PYTEST_ARGS="-x" ...)
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
SLURM_INSTALLED := $(VENV)/.tm23-slurm
MACE_INSTALLED := $(VENV)/.tm23-mace
MATTERSIM_INSTALLED := $(VENV)/.tm23-mattersim
ORB_INSTALLED := $(VENV)/.tm23-orb
FAIRCHEM_INSTALLED := $(VENV)/.tm23-fairchem

.PHONY: demo test setup
.DELETE_ON_ERROR:

demo: $(INSTALLED) $(FLARE_INSTALLED)
	$(VENV)/bin/tm23 demo $(DEMO_ARGS)

test: $(INSTALLED) $(FLARE_INSTALLED) $(CORE_INSTALLED) $(SLURM_INSTALLED) $(MACE_INSTALLED) $(MATTERSIM_INSTALLED) $(ORB_INSTALLED) \
	$(FAIRCHEM_INSTALLED)
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

# SLURM and munge for tests/slurm (root with apt); elsewhere that tier skips, saying how to install them
$(SLURM_INSTALLED): | $(INSTALLED)
	bash scripts/install_slurm.sh && touch $@ || echo "slurm not installed: the slurm tier will be skipped"

# MACE and MatterSim for `tm23 evaluate mace:PATH` / `mattersim:PATH` (and their tests), installed with --no-deps:
# mace-torch's metadata pins e3nn==0.4.4 (nequip needs e3nn 0.6; mace-torch 0.3.16 runs on it), and mattersim's
# plain install pulls torchaudio/torchvision that replace torch 2.13 by 2.14.1 with CUDA 13 libraries (plus
# atomate2, mp-api, azure, wandb, phono3py that inference never imports). The packages below are their missing
# runtime dependencies (everything else they import comes with .[all]); the import check proves nequip still works.
MACE_PACKAGES := mace-torch==0.3.16 torch-ema==0.3 prettytable==3.19.0 wcwidth==0.9.4 python-hostlist==2.3.0 \
	ConfigArgParse==1.9.0 GitPython==3.2.1 gitdb==4.0.12 smmap==5.0.3
MATTERSIM_PACKAGES := mattersim==1.2.3 Deprecated==1.3.1 wrapt==2.5.2 loguru==0.7.3 torch-runstats==0.2.0 torch-ema==0.3
# orb-models 0.5.5 needs cached_path, whose metadata caps huggingface-hub < 2.0 and filelock < 4.0 (a plain install
# would downgrade the huggingface-hub 2.x and filelock 4.x that datasets uses); cached_path imports its S3 and GCS
# clients (boto3, google-cloud-storage) at import, so they come too, though nothing is downloaded.
ORB_PACKAGES := orb-models==0.5.5 dm-tree==0.1.8 cached_path==1.8.10 rich==13.9.4 markdown-it-py==4.3.0 mdurl==0.1.2 \
	boto3==1.44.8 botocore==1.44.8 s3transfer==0.19.3 jmespath==1.1.0 google-cloud-storage==3.17.1 \
	google-api-core==2.44.0 google-auth==2.63.0 google-cloud-core==2.8.0 google-crc32c==1.9.0 \
	google-resumable-media==2.11.0 googleapis-common-protos==1.76.0 proto-plus==1.29.0 protobuf==7.36.2 \
	pyasn1==0.6.5 pyasn1_modules==0.4.2 cryptography==50.0.2 cffi==2.1.1 pycparser==3.12
# fairchem-core 2.24.0 pins lmdb<=1.7.3 (a plain install downgrades the lmdb 3 that nequip and mace use) and
# setuptools<81, and pulls CUDA packages (cuda-python, nvidia-cutlass-dsl, warp-lang, nvalchemi-toolkit-ops) and
# numba that CPU inference never imports; it imports torchtnt, submitit and wandb (with pydantic and
# opentelemetry) at import. On top of the ORB and MACE packages (protobuf, GitPython). torchtnt imports
# pkg_resources, gone from setuptools 81: setuptools 80.10.2 (torch asks >= 77.0.3).
FAIRCHEM_PACKAGES := fairchem-core==2.24.0 setuptools==80.10.2 torchtnt==0.2.4 pyre-extensions==0.0.32 typing-inspect==0.9.0 \
	mypy_extensions==1.2.0 submitit==1.5.4 backoff==2.2.1 wandb==0.31.0 pydantic==2.14.4 pydantic_core==2.50.5 \
	annotated-types==0.8.0 typing-inspection==0.4.5 opentelemetry-api==1.45.2 opentelemetry-sdk==1.45.2 \
	opentelemetry-proto==1.45.2 opentelemetry-semantic-conventions==0.66b2 opentelemetry-exporter-otlp-proto-http==1.45.2 \
	opentelemetry-exporter-otlp-proto-common==1.45.2 opentelemetry-exporter-http-transport==0.66b2 \
	opentelemetry-exporter-otlp-common==0.66b2

$(MACE_INSTALLED): $(INSTALLED)
	$(VENV)/bin/pip install --no-deps $(MACE_PACKAGES)
	$(VENV)/bin/python -c "import mace.calculators, nequip.integrations.ase, e3nn; assert e3nn.__version__ == '0.6.0'"
	touch $@

$(MATTERSIM_INSTALLED): $(INSTALLED)
	$(VENV)/bin/pip install --no-deps $(MATTERSIM_PACKAGES)
	$(VENV)/bin/python -c "import mattersim.forcefield.potential, nequip.integrations.ase, torch; assert torch.__version__.startswith('2.13')"
	touch $@

$(ORB_INSTALLED): $(INSTALLED)
	$(VENV)/bin/pip install --no-deps $(ORB_PACKAGES)
	$(VENV)/bin/python -c "import orb_models.forcefield.pretrained, orb_models.forcefield.calculator, datasets"
	touch $@

$(FAIRCHEM_INSTALLED): $(ORB_INSTALLED) $(MACE_INSTALLED)
	$(VENV)/bin/pip install --no-deps $(FAIRCHEM_PACKAGES)
	$(VENV)/bin/python -c "import fairchem.core, nequip.integrations.ase, lmdb, torch; assert torch.__version__.startswith('2.13')"
	touch $@
