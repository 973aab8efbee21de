# The single way in: make setup / make test / make demo / make bench
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HMS_SAMPLES ?= $(abspath ../shared/hms-samples)
export HMS_SAMPLES

.PHONY: setup test lint demo bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "make setup: $(PYTHON) not found (Python >= 3.11 needed; set PYTHON=...)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev,notebooks]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	$(PY) -c "import hmslib, timm, torch; print('hmslib', hmslib.__version__, '| torch', torch.__version__, '| timm', timm.__version__)"
	touch $(STAMP)

lint: setup
	$(VENV)/bin/ruff check hmslib tests benchmarks notebooks

test: setup lint
	$(VENV)/bin/pytest -n 2 --dist loadfile tests
	HMS_PROFILE=quick $(VENV)/bin/pytest --nbval-lax notebooks

demo: setup
	$(VENV)/bin/hms run --profile demo

bench: setup
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
