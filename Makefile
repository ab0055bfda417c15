# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast test-lowest bench docs lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# torch first, pinned to the local CPU wheel, so that pip does not pull a 5 GB CUDA build.
$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install -q "torch==2.13.0"
	$(PY) -m pip install -q -e ".[serve,onnx,dev,docs]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) examples/demo.py

test: $(STAMP)
	SCIPY_ARRAY_API=1 $(PY) -m pytest -q tests

# The quick set while developing: skips tests marked slow (subprocesses, servers, the check suite).
test-fast: $(STAMP)
	SCIPY_ARRAY_API=1 $(PY) -m pytest -q -m "not slow" tests

# The lowest versions: every direct dependency of the core and of these extras at exactly the lower bound
# that pyproject.toml declares (.ci/lowest_constraints.py writes the pins, hatchling's included),
# in a venv of its own, then the whole test suite and a docs build without running the examples
# (`make docs` runs them, at the newest versions), from a copy of docs/ so that its generated files
# never mix with `make docs`'s. torch comes first, from the constraints, so that
# pip takes the local CPU wheel. The venv is rebuilt from nothing whenever pyproject.toml changes.
LOWEST_VENV := .venv-lowest
LOWEST_PY := $(LOWEST_VENV)/bin/python
LOWEST_EXTRAS := serve,onnx,dev,docs
LOWEST_STAMP := $(LOWEST_VENV)/.installed
# CI runs the fast set here (make test has just run everything at the newest versions), to stay in budget.
LOWEST_PYTEST_ARGS ?= -m "not slow" tests

$(LOWEST_STAMP): pyproject.toml .ci/lowest_constraints.py
	rm -rf $(LOWEST_VENV)
	$(PYTHON) -m venv $(LOWEST_VENV)
	$(LOWEST_PY) -m pip install -q --upgrade pip
	$(PYTHON) .ci/lowest_constraints.py --extras $(LOWEST_EXTRAS) -o $(LOWEST_VENV)/constraints.txt
	$(PYTHON) .ci/lowest_constraints.py --build -o $(LOWEST_VENV)/build-constraints.txt
	$(LOWEST_PY) -m pip install -q -c $(LOWEST_VENV)/constraints.txt torch
	$(LOWEST_PY) -m pip install -q -c $(LOWEST_VENV)/constraints.txt \
		--build-constraint $(LOWEST_VENV)/build-constraints.txt -e ".[$(LOWEST_EXTRAS)]"
	touch $(LOWEST_STAMP)

test-lowest: $(LOWEST_STAMP)
	$(LOWEST_PY) .ci/lowest_constraints.py --check --extras $(LOWEST_EXTRAS)
	SCIPY_ARRAY_API=1 $(LOWEST_PY) -m pytest -q $(LOWEST_PYTEST_ARGS)
	rm -rf $(LOWEST_VENV)/docs-src && mkdir -p $(LOWEST_VENV)/docs-src
	git ls-files -co --exclude-standard docs examples | tar -cf - -T - | tar -xf - -C $(LOWEST_VENV)/docs-src
	$(LOWEST_VENV)/bin/sphinx-build -q -n -W --keep-going -D plot_gallery=0 -b html \
		$(LOWEST_VENV)/docs-src/docs $(LOWEST_VENV)/docs-html

# pyflakes and syntax errors over the package, tests, benchmarks and examples ([tool.ruff] in pyproject.toml),
# then mypy over the package: strict on the core modules, default checks elsewhere ([tool.mypy]).
lint: $(STAMP)
	$(VENV)/bin/ruff check skobject2vec tests benchmarks examples docs/_ext
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) benchmarks/run_all.py --quick

docs: $(STAMP)
	$(VENV)/bin/sphinx-build -n -W --keep-going -b html docs docs/_build/html

clean:
	rm -rf $(VENV) $(LOWEST_VENV) docs/_build build dist *.egg-info
