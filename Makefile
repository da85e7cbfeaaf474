# Every target creates .venv when missing and installs what it needs; nothing else is required.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export DO_NOT_TRACK := 1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export UNSTRUCTURED_DISABLE_NOTICE := 1

.PHONY: demo test lint typecheck pytest bench bench-bridge bench-embeddings bench-rollout install clean

install: $(STAMP)

$(STAMP): pyproject.toml packaging/en_core_web_sm/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools
	# The CPU wheel first, so that nothing later resolves torch to a CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	# partition_pdf needs unstructured_inference's module, not its models: its own deps pull CUDA torch.
	$(PY) -m pip install -q --no-deps unstructured-inference==1.6.14
	# spacy.load("en_core_web_sm") must resolve offline (see packaging/en_core_web_sm).
	$(PY) -m pip install -q ./packaging/en_core_web_sm
	touch $@

demo: $(STAMP)
	$(VENV)/bin/llmw ingest examples/docs
	$(VENV)/bin/llmw search "Which GPU runs vLLM?"
	$(VENV)/bin/llmw search "How are workflow triggers delivered over NATS?" --hybrid

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

pytest: $(STAMP)
	$(VENV)/bin/pytest -q

test: lint typecheck pytest

bench: $(STAMP)
	$(PY) -m bench.ingest

bench-bridge: $(STAMP)
	$(PY) -m bench.bridge_chaos
	$(PY) -m bench.bridge_throughput

bench-embeddings: $(STAMP)
	$(PY) -m bench.embedding_rollout

bench-rollout: $(STAMP)
	$(PY) -m bench.rollout

clean:
	rm -rf $(VENV) .llmw .mypy_cache .ruff_cache .pytest_cache
