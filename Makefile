# sar-repro. Every target depends on `setup`, so any of them works on a fresh clone.
#   make reproduce-table2                      the cpu profile: Fashion-MNIST and the embedded set (2 cores)
#   make reproduce-all PROFILE=smoke           every notebook at smoke scale
#   make reproduce-table2 PROFILE=paper DATA_ROOT=/data NPROC=8
#   make reproduce-table2 PROFILE=paper DATA_ROOT=/data LAUNCHER=slurm SLURM_PARTITION=gpu GPUS_PER_NODE=8
PYTHON   ?= python3
PROFILE  ?= cpu
DATA_ROOT ?=
NPROC    ?= 1
# Optional; each is handed to the notebook only when set, so the notebook's own default applies otherwise.
#   OVERRIDES        JSON object of TrainConfig fields for every run, e.g. '{"img_size": 32, "epochs": 2}'
#   LAUNCHER         local (default: runs in the notebook's process) or slurm (one submitit job per run)
#   SLURM_PARTITION, GPUS_PER_NODE, NODES, TIMEOUT_MIN   the SLURM job shape (TIMEOUT_MIN per job; a job
#                    that reaches it is requeued and resumes from its checkpoint)
#   JOBS             independent runs at once on this machine
OVERRIDES ?=
LAUNCHER ?=
SLURM_PARTITION ?=
GPUS_PER_NODE ?=
NODES    ?=
TIMEOUT_MIN ?=
JOBS     ?=
#   DATASETS, SEEDS  lists replacing the profile's, e.g. DATASETS='[cifar100]' SEEDS='[0, 1]'; EPOCHS an int
DATASETS ?=
SEEDS    ?=
EPOCHS   ?=
# `-p NAME VALUE` only when VALUE is set
param = $(if $(2),-p $(1) '$(2)')
NB_PARAMS = $(call param,data_root,$(DATA_ROOT)) $(call param,launcher,$(LAUNCHER)) \
	$(call param,datasets,$(DATASETS)) $(call param,seeds,$(SEEDS)) $(call param,epochs,$(EPOCHS)) \
	$(call param,slurm_partition,$(SLURM_PARTITION)) $(call param,gpus_per_node,$(GPUS_PER_NODE)) \
	$(call param,nodes,$(NODES)) $(call param,timeout_min,$(TIMEOUT_MIN)) $(call param,jobs,$(JOBS)) \
	$(if $(OVERRIDES),-y 'overrides: $(OVERRIDES)')
# The default profile's outputs are the committed results/; other profiles get their own folder so a
# smoke or paper run never overwrites them.
RESULTS  ?= $(if $(filter cpu,$(PROFILE)),results,results/$(PROFILE))
# the notebooks run in notebooks/: a relative RESULTS is seen from there as ../RESULTS
NB_RESULTS = $(if $(filter /%,$(RESULTS)),$(RESULTS),../$(RESULTS))
VENV     := .venv
PY       := $(VENV)/bin/python
STAMP    := $(VENV)/.installed
# one per module of sarlib/study/targets/ (the registry; table2.py -> reproduce-table2), so a new target
# needs no edit here
TARGETS  := $(subst _,-,$(filter-out __init__ base,$(basename $(notdir $(wildcard sarlib/study/targets/*.py)))))

.PHONY: help setup data test train lab bench strip-notebooks check-paths reproduce-all $(addprefix reproduce-,$(TARGETS))
.DEFAULT_GOAL := help

help:
	@echo "make setup                 create .venv with the pinned dependencies"
	@echo "make data                  find or fetch Fashion-MNIST (Debian package, or torchvision) [DATA_ROOT=...]"
	@echo "make test                  unit tests + notebooks at smoke scale (what CI runs)"
	@echo "make train ARGS=\"...\"      one training run: python -m sarlib.train ARGS (e.g. ARGS=\"--profile smoke\")"
	@echo "make reproduce-<target>    one of: $(TARGETS)   [PROFILE=smoke|cpu|paper DATA_ROOT=... NPROC=...]"
	@echo "                           [OVERRIDES='{json}' LAUNCHER=slurm SLURM_PARTITION=... GPUS_PER_NODE=8 NODES=1 TIMEOUT_MIN=... JOBS=N]"
	@echo "make reproduce-all         every target; outputs in results/ (cpu) or results/<PROFILE>/"
	@echo "make bench                 loss speed and training-step overhead benchmarks"
	@echo "make lab                   JupyterLab on notebooks/README.md, its URL on one line [LAB_PORT=8888]"
	@echo "make strip-notebooks       re-run notebooks at smoke scale, keep only the outputs CI checks"

setup: $(STAMP)

# Re-install only when the dependency list changes. torch>=2.14 comes from the package registry (its
# build bundles CUDA libraries and also runs on CPU).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[suite,dev]"
	touch $@

# Fashion-MNIST's four IDX files: found in DATA_ROOT or the default places, else fetched (Debian's
# dataset-fashion-mnist as root, the same package unpacked into the cache without root, or torchvision).
data: setup
	$(PY) -m sarlib.data.fetch fashion-mnist $(if $(DATA_ROOT),--root "$(DATA_ROOT)")

# Unit tests, then every notebook at smoke scale into a throwaway results dir (conftest.py),
# so the committed results/ stay untouched; cells marked NBVAL_CHECK_OUTPUT must reproduce their output.
test: setup
	$(PY) -m pytest tests notebooks --nbval-lax

# One training run with any of sarlib.train's flags, e.g. make train ARGS="--profile smoke".
train: setup
	$(PY) -m sarlib.train $(ARGS)

# One notebook per target; papermill injects the parameters and keeps the executed copy in results/.
# Paths reach the shell and papermill: refuse spaces, quotes, $ and backslashes in one line, before
# anything is created (make splits words at spaces, so such a path cannot be passed on safely).
UNSAFE_PATH = $(strip $(if $(filter-out 0 1,$(words $(1))),yes)$(foreach c,' " $$ \,$(if $(findstring $(c),$(1)),yes)))
check-paths:
	$(if $(call UNSAFE_PATH,$(RESULTS))$(call UNSAFE_PATH,$(DATA_ROOT)),$(error RESULTS or DATA_ROOT holds a space, \
	quote, dollar sign or backslash ([$(RESULTS)] [$(DATA_ROOT)]); pass a path without them, e.g. a symlink to it))
	@:

# the cpu profile trains on Fashion-MNIST too: `data` finds or fetches it first
$(addprefix reproduce-,$(TARGETS)): reproduce-%: check-paths setup $(if $(filter cpu,$(PROFILE)),data)
	@mkdir -p "$(RESULTS)/notebooks"
	cd notebooks && SARLIB_USER_CWD="$(CURDIR)" ../$(PY) -m sarlib.report.notebook --cwd . $*.ipynb $(NB_RESULTS)/notebooks/$*.ipynb \
		-p profile $(PROFILE) -p nproc $(NPROC) -p results_dir $(NB_RESULTS) $(NB_PARAMS)

reproduce-all: $(addprefix reproduce-,$(TARGETS))

# Rows replace those of the same machine and configuration in BENCH_RESULTS/benchmarks.csv; PROFILE=smoke
# runs the quick grid (rows marked meaningful=False). For the default profile they go to the ignored
# results/bench/, so a local measurement never rewrites the committed results/benchmarks.csv (that one is
# written by `make reproduce-loss-speed`); BENCH_RESULTS=results puts them there on purpose.
BENCH_RESULTS ?= $(if $(filter cpu,$(PROFILE)),results/bench,$(RESULTS))
BENCH_ARGS = --results-dir $(BENCH_RESULTS) $(if $(filter smoke,$(PROFILE)),--quick)
bench: setup
	$(PY) benchmarks/loss_speed.py $(BENCH_ARGS)
	$(PY) benchmarks/step_overhead.py $(BENCH_ARGS)
	$(PY) benchmarks/jobs_vs_threads.py $(BENCH_ARGS)

# Serve the repository root (notebooks link to ../results/figures) and open the notebooks folder.
# Jupyter refuses to run as root without --allow-root (containers often run as root).
# JupyterLab on notebooks/README.md: one line with the URL and its token (a fresh one each time, handed
# to the server through its environment, not its command line), then only the server's warnings.
LAB_PORT ?= 8888
lab: setup
	@token=$$($(PY) -c "import secrets; print(secrets.token_urlsafe(24))"); \
	echo "JupyterLab: http://localhost:$(LAB_PORT)/lab/tree/notebooks/README.md?token=$$token"; \
	JUPYTER_TOKEN=$$token exec $(VENV)/bin/jupyter lab --no-browser --ServerApp.root_dir=. \
		--ServerApp.port=$(LAB_PORT) --ServerApp.port_retries=0 --ServerApp.log_level=WARN --LabApp.log_level=WARN \
		--LabApp.default_url=/lab/tree/notebooks/README.md \
		$(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

# Refresh the committed notebooks' reference outputs: execute at smoke scale in a throwaway results
# dir, then keep only the NBVAL_CHECK_OUTPUT cells' stdout.
strip-notebooks: setup
	cd notebooks && tmp=$$(mktemp -d) && for nb in *.ipynb; do \
		SAR_PROFILE=smoke SAR_RESULTS=$$tmp ../$(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace $$nb || exit 1; \
	done && ../$(PY) ../tests/strip_notebooks.py *.ipynb
