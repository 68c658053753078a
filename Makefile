# `make run` and `make test` set up .venv themselves on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export OMP_WAIT_POLICY := passive

.PHONY: run test setup bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[cpu,dev,weights]'
	# tests' labelled ImageNet photos (foolbox/data/imagenet_*.jpg); its own deps are unneeded
	$(PY) -m pip install -q --no-deps foolbox==3.3.4
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/d2lcv run all --tiny

test: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -n 2 --dist load -q -p no:cacheprovider

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) runs data
