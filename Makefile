# Two commands do everything on a fresh clone:
#   make train   set up .venv, then train the default model and write its run folder
#   make test    set up .venv, then lint and run the test suite
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Use the project's copy of MNIST when it sits beside the checkout (../shared),
# unless MNISTLAB_DATA already says where the data is.
SHARED_MNIST := $(abspath ../shared/data/mnist)
ifeq ($(MNISTLAB_DATA),)
ifneq ($(wildcard $(SHARED_MNIST)/train-images-idx3-ubyte.gz),)
export MNISTLAB_DATA := $(SHARED_MNIST)
endif
endif

WHEELHOUSE := $(VENV)/wheelhouse

.PHONY: setup train test bench lint format clean fuzz wheelhouse

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e '.[dev]'  # dev pulls in the train, web and realworld extras
	touch $(STAMP)

train: $(STAMP)
	$(BIN)/mnistlab train $(ARGS)

bench: $(STAMP)  # speed side by side -> benchmarks/results.md (~30 min on 2 cores)
	$(BIN)/mnistlab bench $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The small install's wheels (core + web, no torch), downloaded once: a test builds a
# fresh virtual environment from them, offline (tests/test_small_install.py).
wheelhouse: $(WHEELHOUSE)/.done

$(WHEELHOUSE)/.done: pyproject.toml | $(STAMP)
	$(BIN)/pip download --quiet --dest $(WHEELHOUSE) --only-binary=:all: '.[web]'
	touch $@

# one pytest-xdist worker per core; a test file stays on one worker, so that its fixtures
# are made once; the files in the order tests/conftest.py gives them, the slowest first
# (README: Tests)
test: lint wheelhouse
	$(BIN)/pytest -q -n auto --dist loadfile --no-loadscope-reorder $(ARGS)

FUZZ_SECONDS ?= 60
fuzz: $(STAMP)  # atheris harnesses, FUZZ_SECONDS each -> a table (docs/reliability.md)
	$(BIN)/python -c "import atheris" 2>/dev/null || $(BIN)/pip install --quiet -e '.[fuzz]'
	$(BIN)/python fuzz/run.py --seconds $(FUZZ_SECONDS)

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
