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
#   FROM_ROWS        True: redraw the tables and figures from $(RESULTS)/<target>.csv's rows, training nothing
#                    (targets whose notebooks read only rows; the others say so in one line)
OVERRIDES ?=
LAUNCHER ?=
SLURM_PARTITION ?=
GPUS_PER_NODE ?=
NODES    ?=
TIMEOUT_MIN ?=
JOBS     ?=
FROM_ROWS ?=
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
	$(call param,from_rows,$(FROM_ROWS)) $(if $(OVERRIDES),-y 'overrides: $(OVERRIDES)')
# The default profile's outputs are the committed results/; other profiles get their own folder so a
# smoke or paper run never overwrites them.
RESULTS  ?= $(if $(filter cpu,$(PROFILE)),results,results/$(PROFILE))
# the notebooks run in notebooks/: a relative RESULTS is seen from there as ../RESULTS
NB_RESULTS = $(if $(filter /%,$(RESULTS)),$(RESULTS),../$(RESULTS))
VENV     := .venv
PY       := $(VENV)/bin/python
STAMP    := $(VENV)/.installed
LOCK     := requirements/lock.txt
# every extra: the suite, the tests, both optional loggers
LOCK_EXTRAS := suite dev tensorboard wandb
# one per module of sarlib/study/targets/ (the registry; table2.py -> reproduce-table2), so a new target
# needs no edit here
TARGETS  := $(subst _,-,$(filter-out __init__ base,$(basename $(notdir $(wildcard sarlib/study/targets/*.py)))))

.PHONY: help setup lock data test test-fast test-browser gpu-check train lab explore bench strip-notebooks reproduce-all verify \
	$(addprefix reproduce-,$(TARGETS)) $(addprefix verify-,$(TARGETS))
.DEFAULT_GOAL := help

help:
	@echo "make setup                 create .venv with the pinned dependencies"
	@echo "make lock                  re-compile requirements/lock.txt from pyproject.toml [LOCK_ARGS=--upgrade]"
	@echo "make data                  find or fetch Fashion-MNIST (Debian package, or torchvision) [DATA_ROOT=...]"
	@echo "make test                  unit tests + notebooks at smoke scale (what CI runs)"
	@echo "make test-fast             unit tests without the slow ones (training, notebooks, subprocesses)"
	@echo "make test-browser          the explorer and a results notebook in headless Chromium [SHOTS=build/screenshots]"
	@echo "make train ARGS=\"...\"      one training run: python -m sarlib.train ARGS (e.g. ARGS=\"--profile smoke\")"
	@echo "make reproduce-<target>    one of: $(TARGETS)   [PROFILE=smoke|cpu|paper DATA_ROOT=... NPROC=...]"
	@echo "                           [OVERRIDES='{json}' LAUNCHER=slurm SLURM_PARTITION=... GPUS_PER_NODE=8 NODES=1 TIMEOUT_MIN=... JOBS=N]"
	@echo "                           [FROM_ROWS=True: redraw from the committed rows, training nothing]"
	@echo "make reproduce-all         every target; outputs in results/ (cpu) or results/<PROFILE>/"
	@echo "make verify-<target>       rerun a target from scratch and compare with results/ [SEEDS='[0]']; make verify: table2"
	@echo "make bench                 loss speed, training-step overhead, jobs vs threads, ISA pinning benchmarks"
	@echo "make gpu-check             the CUDA measurements and R, the training images/s per GPU [BENCH_RESULTS=results]"
	@echo "make lab                   JupyterLab on notebooks/README.md, its URL on one line [LAB_PORT=8888]"
	@echo "make explore               the attention explorer as a standalone page (Voila) [LAB_PORT=8888]"
	@echo "make strip-notebooks       re-run notebooks at smoke scale, keep only the outputs CI checks"

setup: $(STAMP)

# Installs exactly requirements/lock.txt (every package pinned and hashed, `make lock` writes it), then
# sarlib itself from this checkout without touching the pins. `pip install .` outside this Makefile still
# resolves pyproject.toml's ranges. The build uses the locked setuptools (--no-build-isolation), so no
# unpinned package is fetched. -qq keeps pip to errors: a hash, version or platform mismatch is an error
# and still stops setup, while the warnings it would print are about index folders listed in the
# machine's pip configuration that lack a package, not about what is installed. Bytecode is compiled
# once, on every core, after the install (pip's own step is serial): where PYTHONDONTWRITEBYTECODE is set,
# as on CI machines, Python never caches it itself, and every process (a training run, a notebook
# kernel, a test's subprocess) would recompile torch, timm and the notebook stack from source on import,
# about 8 s of CPU each on this project's 2-core VM. Files that are not valid Python for this interpreter
# (templates, other versions' test data shipped in some packages) are skipped silently.
$(STAMP): $(LOCK) pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -qq --no-compile --require-hashes -r $(LOCK)
	$(PY) -m pip install -qq --no-deps --no-build-isolation -e .
	$(PY) -m compileall -qq -j 0 "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" || true
	touch $@

# Re-compile the lock from pyproject.toml (keeping every pin that still satisfies it; add
# LOCK_ARGS=--upgrade to move to the newest allowed releases). Its first line records the fingerprint
# of pyproject.toml's dependency tables, which tests/test_lock.py checks.
# A constraint in the pip configuration (e.g. a cap on torch) applies to every install on this machine,
# `make setup` included, so the lock is compiled under it; pip-compile does not read it by itself.
# Index and find-links options stay out of the lock: they belong to the machine, not to the project.
LOCK_ARGS ?=
lock: setup
	$(PY) requirements/stamp.py --check
	constraint=$$($(PY) -m pip config list | sed -n "s/^global\.constraint='\(.*\)'$$/\1/p"); \
	CUSTOM_COMPILE_COMMAND="make lock" $(VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe \
		--strip-extras --all-build-deps --no-emit-index-url --no-emit-find-links \
		$(addprefix --extra ,$(LOCK_EXTRAS)) $${constraint:+-c "$$constraint"} $(LOCK_ARGS) \
		--output-file $(LOCK) pyproject.toml
	{ $(PY) requirements/stamp.py && cat $(LOCK); } > $(LOCK).tmp && mv $(LOCK).tmp $(LOCK)

# Fashion-MNIST's four IDX files: found in DATA_ROOT or the default places, else fetched (Debian's
# dataset-fashion-mnist as root, the same package unpacked into the cache without root, or torchvision).
FETCH = $(PY) -m sarlib.data.fetch fashion-mnist $(if $(DATA_ROOT),--root "$(DATA_ROOT)")
data: setup
	$(FETCH)

# Unit tests, then every notebook at smoke scale into a throwaway results dir (conftest.py),
# so the committed results/ stay untouched; cells marked NBVAL_CHECK_OUTPUT must reproduce their output.
# One worker per core (pytest-xdist). --dist loadfile sends each file whole to one worker, in order: a
# notebook's cells share one kernel, so they must run together (xdist's finer loadgroup did not keep
# nbval's cells together), and module-scoped fixtures are built once.
PYTEST_PARALLEL = -n auto --dist loadfile
test: setup
	$(PY) -m pytest $(PYTEST_PARALLEL) -m "not browser" tests notebooks --nbval-lax

# JupyterLab and Voila in a real browser (tests/test_browser.py): Debian's chromium and chromium-driver,
# installed first when missing (as root, as on CI); the screenshots go to SHOTS.
SHOTS ?= build/screenshots
test-browser: setup data
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { [ "$$(id -u)" = 0 ] && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; } \
		|| { echo "make test-browser needs chromium and chromium-driver: apt-get install chromium chromium-driver (as root)"; exit 1; }
	SAR_SCREENSHOTS="$(SHOTS)" $(PY) -m pytest -m browser tests/test_browser.py

# The unit tests without the slow ones (training, notebooks, subprocesses: the list in conftest.py).
test-fast: setup
	$(PY) -m pytest $(PYTEST_PARALLEL) -m "not slow" tests

# One training run with any of sarlib.train's flags, e.g. make train ARGS="--profile smoke".
train: setup
	$(PY) -m sarlib.train $(ARGS)

# One notebook per target; papermill injects the parameters and keeps the executed copy in results/.
# Every variable a recipe passes to the shell is checked when make starts (any goal but help), in one
# line and before anything runs (sarlib/utils/make_inputs.py: paths, quoted notebook parameters and bare
# words each allow only what their place in a recipe keeps inert). The values reach the check through a
# file make writes itself, so no shell parses them on the way.
INPUT_VARS := RESULTS DATA_ROOT BENCH_RESULTS SPREAD_OUT SHOTS OVERRIDES LAUNCHER SLURM_PARTITION GPUS_PER_NODE NODES TIMEOUT_MIN \
	JOBS FROM_ROWS DATASETS SEEDS EPOCHS PROFILE NPROC LAB_PORT
define newline


endef
ifneq ($(filter-out help,$(or $(MAKECMDGOALS),help)),)
# one file per make process (two makes in one checkout must not share it); mktemp sees no user value
INPUTS_FILE := $(shell mktemp "$${TMPDIR:-/tmp}/sar-make-inputs.XXXXXX")
$(file >$(INPUTS_FILE),$(foreach v,$(INPUT_VARS),$(v)=$($(v))$(newline)))
INPUT_PROBLEM := $(shell $(PYTHON) sarlib/utils/make_inputs.py '$(INPUTS_FILE)')
ifneq ($(INPUT_PROBLEM),)
$(error $(INPUT_PROBLEM))
endif
endif

# the cpu profile trains on Fashion-MNIST too: `data` finds or fetches it first
$(addprefix reproduce-,$(TARGETS)): reproduce-%: setup $(if $(filter cpu,$(PROFILE)),data)
	cd notebooks && SARLIB_USER_CWD="$(CURDIR)" ../$(PY) -m sarlib.report.notebook --cwd . $*.ipynb $(NB_RESULTS)/notebooks/$*.ipynb \
		-p profile $(PROFILE) -p nproc $(NPROC) -p results_dir $(NB_RESULTS) $(NB_PARAMS)

reproduce-all: $(addprefix reproduce-,$(TARGETS))

# Rerun a target's runs (all, or SEEDS / DATASETS of them) from scratch into $(RESULTS)/verify/<target> and
# compare them with $(RESULTS) row by row and verdict by verdict (sarlib/report/verify.py): status 0 when every
# value matches to the written digit and every verdict compared held. SPREAD_OUT=FILE also writes how far the
# rerun moved each interval (results/machine_spread.csv comes from a rerun at another ISA level, docs/spec.md).
SPREAD_OUT ?=
$(addprefix verify-,$(TARGETS)): verify-%: setup $(if $(filter cpu,$(PROFILE)),data)
	SARLIB_USER_CWD="$(CURDIR)" $(PY) -m sarlib.report.verify $* --profile $(PROFILE) --results "$(RESULTS)" \
		$(if $(SEEDS),--seeds '$(SEEDS)') $(if $(DATASETS),--datasets '$(DATASETS)') \
		$(if $(SPREAD_OUT),--spread-out "$(SPREAD_OUT)")

verify: verify-table2

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
	$(PY) benchmarks/isa_pinning.py $(BENCH_ARGS)
	$(PY) benchmarks/explore_redraw.py $(BENCH_ARGS)

# The GPU figures the documentation waits for (benchmarks/gpu_check.py: loss and step on CUDA, R from a
# short paper-preset run); on a machine without CUDA it says so in one line and writes nothing.
gpu-check: setup
	$(PY) benchmarks/gpu_check.py --results-dir $(BENCH_RESULTS)

# Serve the repository root (notebooks link to ../results/figures) and open the notebooks folder.
# Jupyter refuses to run as root without --allow-root (containers often run as root).
# JupyterLab on notebooks/README.md: one line with the URL and its token (a fresh one each time, handed
# to the server through its environment, not its command line), then only the server's warnings. Its
# settings (.jupyter-settings/overrides.json) turn off the news pop-up; saving a source notebook keeps it a
# source (sarlib/report/lab.py: no outputs but the NBVAL_CHECK_OUTPUT cells' smoke values).
LAB_PORT ?= 8888
lab: setup
	@$(FETCH) 1>&2  # the explorer needs Fashion-MNIST; stdout keeps only the URL line
	@token=$$($(PY) -c "import secrets; print(secrets.token_urlsafe(24))"); \
	echo "JupyterLab: http://localhost:$(LAB_PORT)/lab/tree/notebooks/README.md?token=$$token"; \
	JUPYTER_TOKEN=$$token exec $(VENV)/bin/jupyter lab --no-browser --ServerApp.root_dir=. \
		--ServerApp.port=$(LAB_PORT) --ServerApp.port_retries=0 --ServerApp.log_level=WARN --LabApp.log_level=WARN \
		--LabApp.default_url=/lab/tree/notebooks/README.md --LabApp.app_settings_dir=.jupyter-settings \
		--ContentsManager.pre_save_hook=sarlib.report.lab.strip_on_save \
		$(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

# The explorer as a standalone page: Voila runs notebooks/explore.ipynb and shows its widgets, not its code,
# on this machine only (127.0.0.1), behind a throwaway token.
explore: setup
	@$(FETCH) 1>&2  # the explorer needs Fashion-MNIST; stdout keeps only the URL line
	@token=$$($(PY) -c "import secrets; print(secrets.token_urlsafe(24))"); \
	echo "Explorer: http://localhost:$(LAB_PORT)/?token=$$token"; \
	JUPYTER_TOKEN=$$token exec $(VENV)/bin/voila notebooks/explore.ipynb --no-browser --port=$(LAB_PORT) \
		--Voila.ip=127.0.0.1 --ServerApp.token=$$token --Voila.log_level=WARN

# Refresh the committed notebooks' reference outputs: execute at smoke scale in a throwaway results
# dir, then keep only the NBVAL_CHECK_OUTPUT cells' stdout.
strip-notebooks: setup
	cd notebooks && tmp=$$(mktemp -d) && for nb in *.ipynb; do \
		SAR_PROFILE=smoke SAR_RESULTS=$$tmp ../$(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace $$nb || exit 1; \
	done && ../$(PY) ../tests/strip_notebooks.py *.ipynb
