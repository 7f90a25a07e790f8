# The two entry points a newcomer needs: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SAMPLE := samples/rainy_street.mp4
OUT := out/rainy_street_restored.mp4

.PHONY: setup demo test lint format bench browser bench-extra pictures

# torch is pinned first so pip takes the CPU build instead of a multi-GB CUDA one.
$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	mkdir -p out
	$(BIN)/python run_pipeline.py run -c configs/sample.yaml -i $(SAMPLE) -o $(OUT) -y
	@echo "restored video: $(OUT)"

# Headless Chromium renders the job report in tests/test_report.py; where it cannot be
# installed (no root, no network) that one test skips and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium) \
		>/dev/null 2>&1 || echo "chromium not installed: the report's browser test will skip"

# The CBM3D anchor (a benchmark-only extra) is tested where pip can fetch it; where it
# cannot, that one test skips and says why.
bench-extra: setup
	@$(BIN)/python -c "import bm3d" 2>/dev/null || $(BIN)/pip install -q -e '.[bench]' \
		>/dev/null 2>&1 || echo "bm3d not installed: the CBM3D test will skip"

test: setup browser bench-extra
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The README's before/after pictures, remade with run + compare from the bundled sample
# and from held-out synthetic footage for every model whose weights ship (docs/pictures/).
pictures: setup
	$(BIN)/python -m samples.pictures

bench: setup
	$(BIN)/python -m benchmarks.throughput
