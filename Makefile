# `make demo`: set up .venv and run the demo pipeline; `make test`: set up .venv and run the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PACKAGES := -e ".[plots,mlflow]" -e plugins/asd_datasets -e plugins/asd_frontends -e plugins/asd_frontends_ssl -e plugins/asd_backends -e "plugins/asd_executors[slurm,ray]"
PYPROJECTS := pyproject.toml $(wildcard plugins/*/pyproject.toml) requirements/constraints.txt

.PHONY: setup demo test clean

setup: $(VENV)/.installed

$(VENV)/.installed: $(PYPROJECTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements/constraints.txt $(PACKAGES) "pytest>=7.4" "cookiecutter>=2.1" "setuptools>=70.1,<82"
	touch $@

demo: setup
	$(BIN)/asdcore run recipes/demo.yaml

test: setup
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) results data/synth-demo data/synth-grid-demo
