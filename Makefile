# flairhub_nb — one command to set up and run each job. Every target refreshes .venv first when it is
# missing or older than constraints.txt / pyproject.toml.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1
export PYTHONUNBUFFERED := 1
DEMO_OUT ?= demo_out
# nbdev's clean-on-save hook (`[tool.nbdev] jupyter_hooks = true`): saving a notebook in JupyterLab leaves it
# nbdev-clean, so `make sync-check` still passes after a session. `make lab` passes it on the command line;
# `make install` also writes it into the venv's own Jupyter config (not ~/.jupyter), for `.venv/bin/jupyter lab`.
LAB_ARGS := --ContentsManager.pre_save_hook=nbdev.clean.clean_jupyter
JUPYTER_HOOK := $(VENV)/etc/jupyter/jupyter_server_config.json

.PHONY: install chromium demo test test-slow sync-check docs bench lab lab-args clean readme lint

## install: the venv, and nbdev's Jupyter save hook for every Jupyter server of this venv (see JUPYTER_HOOK)
install: $(STAMP) $(JUPYTER_HOOK)

$(STAMP): constraints.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (Python >= 3.11 needed; set PYTHON=...)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

$(JUPYTER_HOOK): | $(STAMP)
	@mkdir -p $(dir $@)
	@$(PYTHON) -c 'import json, pathlib, sys; p = pathlib.Path(sys.argv[1]); c = json.loads(p.read_text()) if p.exists() else {}; \
	  c.setdefault("ContentsManager", {})["pre_save_hook"] = "nbdev.clean.clean_jupyter"; p.write_text(json.dumps(c, indent=1) + "\n")' $@
	@echo "nbdev's Jupyter save hook on: $@"

## chromium: headless Chromium for the docs tests (Debian package; installed when missing and running as root)
chromium:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || command -v google-chrome >/dev/null || \
	  { if [ "$$(id -u)" = 0 ]; then echo "installing Debian's chromium for the docs tests"; \
	      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null); \
	    else echo "error: chromium is missing: sudo apt-get install -y chromium"; exit 1; fi; }

## demo: toy data -> papermill training -> zonal inference on the toy zone -> test and zonal scores, a picture, time per step, output paths
demo: install
	$(BIN)/python -c "import sys; from flairhub_nb.demo import main; sys.exit(main(['--out', '$(DEMO_OUT)']))"

## test: the whole default test suite (notebooks + pytest), slow cases excluded
test: install chromium sync-check
	$(BIN)/nbdev-test --n-workers 2 --timing
	$(BIN)/python -m pytest -q -n 2 tests

## test-slow: the cases flagged `slow` (notebook cells and pytest marks)
test-slow: install chromium
	$(BIN)/nbdev-test --n-workers 2 --flags slow --timing
	$(BIN)/python -m pytest -q -m slow tests

## sync-check: notebooks are clean and the library is exported from them
sync-check: install
	@before=$$(git status --porcelain -- flairhub_nb nbs 2>/dev/null | md5sum); \
	$(BIN)/nbdev-export && $(BIN)/nbdev-clean; \
	after=$$(git status --porcelain -- flairhub_nb nbs 2>/dev/null | md5sum); \
	if [ "$$before" != "$$after" ]; then echo "error: nbdev-export/nbdev-clean changed files; commit the result"; git status --short -- flairhub_nb nbs; exit 1; fi

lint: install
	$(BIN)/ruff check flairhub_nb tests benchmarks

readme: install
	$(BIN)/python tools/build_docs.py --readme-only

## docs: quarto site when quarto exists, else the offline HTML fallback in _docs/
docs: install chromium
	@if command -v quarto >/dev/null; then $(BIN)/nbdev-docs; else $(BIN)/python tools/build_docs.py; fi

bench: install
	$(BIN)/python benchmarks/bench_data.py
	$(BIN)/python benchmarks/bench_zonal.py
	$(BIN)/python benchmarks/bench_train.py

## lab: JupyterLab on nbs/, started from there (nbdev's hook finds pyproject.toml from the saved notebook's path)
lab: install
	cd nbs && $(abspath $(BIN))/jupyter lab $(LAB_ARGS)

lab-args:
	@echo $(LAB_ARGS)

clean:
	rm -rf $(VENV) _docs _proc $(DEMO_OUT)
