# Two entry points for a fresh machine (see README.md):
#   make run   - install everything, provision the default models, build the index, open the chat
#   make test  - install everything (with test tools and a headless browser), provision every model, run the tests
#   make test-fast - lint, then the fast test layer only (no model loads, no processes)
PYTHON ?= python3
VENV := .venv
PIP := $(VENV)/bin/pip
LLAMA_VERSION := 0.3.36
# The native build segfaults in ggml's AMX kernels on this CPU, and turning AMX off is not
# enough because native detection turns it back on: fix the instruction sets explicitly.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
	-DGGML_BMI2=ON -DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON
# pip's wheel cache ignores CMAKE_ARGS, so the built wheel is kept in a folder named after them.
LLAMA_WHEELS := $(HOME)/.cache/polyglot-rag/llama-wheels/$(shell echo '$(LLAMA_VERSION) $(LLAMA_CMAKE_ARGS)' | sha256sum | cut -c1-16)
SAMPLE_QUESTION := 인도네시아 기사에 따르면 OpenAI의 테스트는 GPU에서 몇 분 걸리나요?

.PHONY: install install-test run test test-fast lint

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.llama-built: | $(VENV)/bin/python
	@mkdir -p $(LLAMA_WHEELS)
	@if ! ls $(LLAMA_WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl >/dev/null 2>&1; then \
		echo "Building llama-cpp-python $(LLAMA_VERSION) for this CPU (5-9 minutes on 2 cores) ..."; \
		CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) wheel --quiet --no-deps --no-cache-dir \
			--no-binary llama-cpp-python llama-cpp-python==$(LLAMA_VERSION) -w $(LLAMA_WHEELS); \
	fi
	$(PIP) install --quiet --force-reinstall --no-deps $(LLAMA_WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl
	@touch $@

# torch is installed first and pinned: an unpinned torch pulls a multi-GB CUDA build.
# Tesseract OCR with the corpus languages reads scanned PDF pages (rag/readers.py).
OCR_PACKAGES := tesseract-ocr tesseract-ocr-eng tesseract-ocr-kor tesseract-ocr-chi-sim tesseract-ocr-ind

$(VENV)/.installed: pyproject.toml $(VENV)/.llama-built
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e .
	@dpkg -s $(OCR_PACKAGES) >/dev/null 2>&1 || \
		(apt-get update -qq && apt-get install -y -qq $(OCR_PACKAGES) >/dev/null)
	@touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install --quiet -e '.[test]'
	@command -v chromium >/dev/null && fc-list | grep -qi "noto.*cjk" || \
		(apt-get update -qq && apt-get install -y -qq chromium fonts-noto-cjk >/dev/null)
	@touch $@

install: $(VENV)/.installed
	$(VENV)/bin/rag models

# The tests check every catalogue model against its pin, so all of them are provisioned.
install-test: $(VENV)/.installed-test
	$(VENV)/bin/rag models --all

run: install
	$(VENV)/bin/rag index
	$(VENV)/bin/ask "$(SAMPLE_QUESTION)"
	$(VENV)/bin/rag ui

# Two workers, each taking over the rest of the other's queue when its own is done; then,
# alone, the tests that time the pipeline against the bare library, which a busy neighbour skews.
test: install-test lint
	$(VENV)/bin/python -m pytest -n 2 --dist worksteal -m "not serial"
	$(VENV)/bin/python -m pytest -m serial

# The fast layer: no model loads, no processes (tests/conftest.py); for use while working.
test-fast: $(VENV)/.installed-test lint
	$(VENV)/bin/python -m pytest -m "not full"

# ruff's lint and format check (configured in pyproject.toml).
lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
