# Two entry points (see README.md):
#   make demo   set everything up, then run the demo night (console on a terminal, headless otherwise)
#   make test   set everything up, then run the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test setup system-deps clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

setup: $(STAMP)

# tmux drives the console's end-to-end test; installed from Debian when missing.
system-deps:
	@command -v tmux >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq tmux >/dev/null; \
	  elif command -v sudo >/dev/null 2>&1; then sudo -n apt-get update -qq && sudo -n apt-get install -y -qq tmux >/dev/null; \
	  else false; fi; } || echo "tmux could not be installed: the tmux end-to-end test will be skipped"

demo: $(STAMP)
	$(BIN)/sedmtui --demo

test: $(STAMP) system-deps
	$(BIN)/python -m pytest -n 2 -q

clean:
	rm -rf $(VENV) build *.egg-info
