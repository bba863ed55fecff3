# Two commands for everyone (see README.md):
#   make lab   -> install into .venv (if needed) and open the lessons in JupyterLab
#   make test  -> the same install, then every test (unit, notebooks, exercises, browser, classroom)
#   make doctor -> can this machine run the lessons?
#   make test-busy -> make test's suite beside one CPU hog per core
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
ifeq ($(OS),Windows_NT)
BIN    := $(VENV)/Scripts
endif
STAMP  := $(VENV)/.installed
# The real-classroom test drives a JupyterHub, whose proxy comes from npm (node needed).
PROXY  := $(VENV)/node/.installed

.PHONY: lab test test-busy install doctor bench clean strip

lab: $(STAMP)
	$(BIN)/python -m socketlessons lab

# Two stages (tests/run_suite.py): most tests on two xdist workers, then the classroom and
# browser tests one at a time.
test: $(STAMP) $(PROXY)
	$(BIN)/python tests/run_suite.py

# The same suite with one CPU-bound process per core running throughout (a shared machine).
test-busy: $(STAMP) $(PROXY)
	$(BIN)/python tests/run_suite.py --busy

install: $(STAMP)

$(PROXY):
	@if command -v npm >/dev/null 2>&1; then \
		npm install --silent --no-fund --no-audit --prefix $(VENV)/node configurable-http-proxy@5 && touch $(PROXY); \
	else \
		echo "npm not found: the JupyterHub classroom test (tests/test_hub.py) will be skipped"; \
	fi

doctor: $(STAMP)
	$(BIN)/python -m socketlessons doctor

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade --quiet pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

strip: $(STAMP)
	$(BIN)/python -m nbstripout --extra-keys metadata.widgets notebooks/*.ipynb

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
