# ctcli — every dependency is installed from this file and pyproject.toml.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
CTCLI := $(VENV)/bin/ctcli
STAMP := $(VENV)/.installed
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install system demo test lint format bench golden lm clean

install: $(STAMP)

# System libraries: PortAudio for the microphone (sounddevice). Best effort:
# everything but `ctcli listen` works without it.
system:
	@if ! ldconfig -p 2>/dev/null | grep -q libportaudio.so.2; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get install -y -q libportaudio2 >/dev/null 2>&1 || \
	     (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q libportaudio2 >/dev/null 2>&1)) || \
	    echo "warning: could not install libportaudio2; 'ctcli listen' will be unavailable" >&2; \
	  fi; \
	fi

$(STAMP): pyproject.toml | system
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned: the CPU wheel on local disk, never a CUDA download.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

demo: install
	@echo "== ctcli models" >&2
	$(CTCLI) models
	@echo "== ctcli transcribe (bundled examples)" >&2
	$(CTCLI) transcribe -r -f tsv models/*/examples

test: install
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check ctcli tests bench
	$(VENV)/bin/ruff format --check ctcli tests bench

format: install
	$(VENV)/bin/ruff format ctcli tests bench
	$(VENV)/bin/ruff check --fix ctcli tests bench

bench: install
	PY=$(PY) bash bench/run.sh

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
