# Two entry points (see README.md):
#   make demo   set everything up, then run the demo night (console on a terminal, headless otherwise)
#   make test   set everything up, then lint (ruff) and run the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint setup system-deps clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

setup: $(STAMP)

# tmux drives the console's end-to-end test, astrometry.net the solve-field backend's tests,
# chromium the web console's test; installed from Debian when missing (their tests are skipped otherwise).
APT_INSTALL = if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(1) >/dev/null; \
	  elif command -v sudo >/dev/null 2>&1; then sudo -n apt-get update -qq && sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(1) >/dev/null; \
	  else false; fi

system-deps:
	@command -v tmux >/dev/null 2>&1 || { $(call APT_INSTALL,tmux); } \
	  || echo "tmux could not be installed: the tmux end-to-end test will be skipped"
	@command -v solve-field >/dev/null 2>&1 || { $(call APT_INSTALL,astrometry.net); } \
	  || echo "astrometry.net could not be installed: the solve-field tests will be skipped"
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { $(call APT_INSTALL,chromium); } \
	  || echo "chromium could not be installed: the sedmtui serve browser test will be skipped"

demo: $(STAMP)
	$(BIN)/sedmtui --demo

test: $(STAMP) system-deps lint
	$(BIN)/python -m pytest -n 2 -q

# ruff (its rules are in pyproject.toml); the import-graph test (tests/test_import_graph.py: no
# cycles, algorithms never import the pipeline) runs with the tests.
lint: $(STAMP)
	$(BIN)/python -m ruff check engine sedmtui tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info
