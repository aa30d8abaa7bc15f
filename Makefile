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

# >>> ocr-expr (issue 5; appended by the OCR engineer, owner: ctcli/train.py) >>>
# Reproduce the bundled arithmetic-captcha CRNN: generate 30 x 10k captcha
# shards (seeds 1000-1029, val seed 7) under data/ocr-expr, then train 8k
# steps on one CPU thread (CUDA when available), resumable. Evaluation uses
# seeds >= 100000, never seen in training.
.PHONY: train-ocr-expr eval-ocr-expr
train-ocr-expr: install
	$(CTCLI) train --spec expr --shards 30 --shard-size 10000 --steps 8000 --batch 32 --lr 0.002 \
	  --seed 1 --threads 1 --out models/ocr-expr/model.pt --run-dir runs/ocr-expr --data-dir data/ocr-expr --resume
	$(PY) -m ctcli.registry refresh

eval-ocr-expr: install
	$(CTCLI) eval --model ocr-expr --spec expr --n 10000 --seed 100000 --threads 1
# <<< ocr-expr <<<

# ---- language models (issue 4: ctcli lm build, lm/) -------------------------
# `make lm` rebuilds lm/en-4gram.bin, lm/en-4gram.unigrams.txt,
# lm/expr-char.arpa and lm/MANIFEST.json from Debian packages (apt-get
# download, no install) and PyPI; `make bench-lm` compares `ctcli lm build`
# with KenLM's lmplz on 1 M words (build time, peak RSS, test perplexity).
.PHONY: kenlm-tools lm-corpus bench-lm
kenlm-tools:
	lm/build_kenlm_tools.sh

lm: install kenlm-tools
	PY=$(PY) lm/recipe.sh

lm-corpus: install
	PY=$(PY) lm/recipe.sh corpus

bench-lm: install kenlm-tools lm-corpus
	$(PY) bench/lmbuild.py

bench: kenlm-tools lm-corpus
# ---- end of language models -------------------------------------------------
