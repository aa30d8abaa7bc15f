# ctcli — every dependency is installed from this file and pyproject.toml.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
CTCLI := $(VENV)/bin/ctcli
STAMP := $(VENV)/.installed
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install system demo test lint format bench golden lm clean

install: $(STAMP)

# System packages (Debian), best effort, only when missing and running as root:
# PortAudio for the microphone (sounddevice), espeak-ng and flite (offline TTS
# voices for the synthetic speech tests and corpus). Everything but
# `ctcli listen` on a real microphone works without them.
SYSTEM_DEBS := libportaudio2 espeak-ng flite
system:
	@missing=""; for p in $(SYSTEM_DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian packages:$$missing" >&2; \
	  (apt-get install -y -q --no-install-recommends $$missing >/dev/null 2>&1 || \
	   (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends $$missing >/dev/null 2>&1)) || \
	  echo "warning: could not install$$missing" >&2; \
	fi

# Everything the speech corpus generator can use (festival voices, ffmpeg for
# codec round trips, the text packages behind lm/ and the synthetic corpus).
SPEECH_DEBS := festival festvox-us-slt-hts festvox-kallpc16k festvox-kdlpc16k ffmpeg sox
system-speech: system
	apt-get install -y -q --no-install-recommends $(SPEECH_DEBS) >/dev/null || \
	  (apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends $(SPEECH_DEBS) >/dev/null)

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
# Reproduce the bundled arithmetic-captcha CRNN in four stages, one CPU thread
# each (CUDA when available), resumable:
#  1. 8k steps on 6 x 10k captchas (seeds 1000-1005, val seed 7) under
#     data/ocr-expr, cropped with the fixed 0.5 ink threshold (the first model);
#  2. fine-tune 16k steps at LR 1e-3 on 10 x 10k captchas under data/ocr-expr2
#     cropped with the median threshold, which keeps faint text the fixed one
#     cut away;
#  3. fine-tune 16k steps at LR 5e-4 on 30 x 10k captchas (the same folder);
#  4. fine-tune 16k steps at LR 7e-4 on the same 300k captchas widened 1.5x
#     (--stretch, data/ocr-expr-s15); bundle it as models/ocr-expr with the
#     inference stretch 1.7 chosen on development captchas (seed 300000).
# Evaluation uses seeds >= 100000, never seen in training.
.PHONY: train-ocr-expr eval-ocr-expr
train-ocr-expr: install
	$(CTCLI) train --spec expr --shards 6 --shard-size 10000 --steps 8000 --batch 32 --lr 0.002 \
	  --seed 1 --threads 1 --crop fixed --no-mask --out runs/ocr-expr/stage1.pt --run-dir runs/ocr-expr \
	  --data-dir data/ocr-expr --resume
	$(CTCLI) train --spec expr --shards 10 --shard-size 10000 --steps 16000 --batch 32 --lr 0.001 \
	  --seed 1 --threads 1 --crop median --no-mask --init runs/ocr-expr/stage1.pt --out runs/ocr-expr2/model.pt \
	  --run-dir runs/ocr-expr2 --data-dir data/ocr-expr2 --resume
	$(CTCLI) train --spec expr --shards 30 --shard-size 10000 --steps 16000 --batch 32 --lr 0.0005 \
	  --seed 3 --threads 1 --no-mask --init runs/ocr-expr2/model.pt --out runs/ocr-expr3/model.pt \
	  --run-dir runs/ocr-expr3 --data-dir data/ocr-expr2 --resume
	$(CTCLI) train --spec expr --shards 30 --shard-size 10000 --steps 16000 --batch 32 --lr 0.0007 \
	  --seed 5 --threads 1 --crop median --stretch 1.5 --init runs/ocr-expr3/model.pt \
	  --out runs/ocr-expr5/model.pt --run-dir runs/ocr-expr5 --data-dir data/ocr-expr-s15 --resume
	$(PY) -m ctcli.registry install ocr-expr runs/ocr-expr5/model.pt --stretch 1.7

eval-ocr-expr: install
	$(CTCLI) eval --model ocr-expr --spec expr --n 10000 --seed 100000 --threads 1

# OCR peers (tesseract --psm 7, RapidOCR recogniser in bench/.venv-ocr) on the
# same captchas, held-out printed lines and real scanned lines (calamari-ocr's
# UW-III test lines); also part of `make bench`.
.PHONY: bench-ocr
bench-ocr: install
	bash bench/setup_ocr_peers.sh
	$(PY) bench/ocr_real.py
	$(PY) bench/ocr_peers.py
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

# ---- speech (synthetic corpus, acoustic model) --------------------------------
# Shards are deterministic from the seed and resumable; they live outside the
# work tree by default so that a fresh checkout can reuse them. The neural
# voices (piper, hibari) come from pyproject's speech-data extra, which `install`
# brings in through dev; the Debian voices from system-speech. Which voices are
# installed decides each utterance's voice, so keep one set for a whole corpus.
SPEECH_DATA ?= $(HOME)/.cache/ctcli
JOBS ?= $(shell nproc)
# The voices of the corpora made before Kokoro joined the speech-data extra:
# pinned, so that those recipes still render what they rendered then.
CLASSIC_VOICES = espeak-ng,flite,festival,piper,hibari
.PHONY: system-speech data-speech data-speech-s11 data-speech-s21 data-speech-s51 data-speech-k train-asr-en
data-speech: install system-speech lm-corpus
	nice -n 10 $(PY) -m ctcli.synth.speechdata --text build/lm/corpus/test.txt --out $(SPEECH_DATA)/speech-val --shards 1 --shard-size 400 --seed 2 --voices $(CLASSIC_VOICES)
	nice -n 10 $(PY) -m ctcli.synth.speechdata --text build/lm/corpus/test.txt --out $(SPEECH_DATA)/speech-heldout-voice --shards 1 --shard-size 300 --seed 3 --held-out-voices
	nice -n 10 $(PY) -m ctcli.synth.speechdata --text build/lm/corpus/train.txt --out $(SPEECH_DATA)/speech --shards 60 --shard-size 1000 --seed 1 --voices $(CLASSIC_VOICES) --jobs $(JOBS)

# The second corpus of stage 4 (below): the voices of the GPU machine it was
# rendered on (no ffmpeg, piper, hibari or ked_diphone there), 250-utterance
# shards from 120,000 of the training sentences, seed 11. The trainer there
# had read 128 shards at its last pass (14 writers finish out of order, so not
# exactly shards 0-127) and 138 were written.
S11_VOICES = espeak-ng,flite,festival:cmu_us_slt_arctic_hts,festival:kal_diphone
data-speech-s11: install system-speech lm-corpus
	$(PY) -c "import random; from pathlib import Path; from ctcli.synth.speechdata import load_sentences; s = load_sentences(Path('build/lm/corpus/train.txt')); random.Random(5).shuffle(s); Path('build/speech-s11.txt').write_text('\n'.join(s[:120000]) + '\n')"
	nice -n 10 $(PY) -m ctcli.synth.speechdata --text build/lm/corpus/test.txt --out $(SPEECH_DATA)/speech-val-s11 --shards 4 --shard-size 100 --seed 2 --voices $(S11_VOICES) --no-codecs --jobs $(JOBS)
	nice -n 10 $(PY) -m ctcli.synth.speechdata --text build/speech-s11.txt --out $(SPEECH_DATA)/speech-s11 --shards 128 --shard-size 250 --seed 11 --voices $(S11_VOICES) --no-codecs --jobs $(JOBS)

# The third corpus (stage 6): every voice, seed 21, 27 shards of 1,000, each
# also kept before the channel (--dry-out) for train_asr --dry-data.
data-speech-s21: install system-speech lm-corpus
	nice -n 10 $(PY) -m ctcli.synth.speechdata --text build/lm/corpus/train.txt --out $(SPEECH_DATA)/speech-s21 --dry-out $(SPEECH_DATA)/speech-s21-dry --shards 27 --shard-size 1000 --seed 21 --voices $(CLASSIC_VOICES) --jobs $(JOBS)

# The fourth corpus (stage 7), rendered on a GPU machine's 16 cores while the
# trainer read it (no ffmpeg or piper there: hence the voice list and
# --no-codecs): seed 51, 500-utterance shards with dry twins, 234 written; the
# trainer had read 209 of them (104,500 utterances, 109 h) at its last pass
# (13 writers finish out of order, so not exactly shards 0-208).
S51_VOICES = espeak-ng,flite,festival,hibari
data-speech-s51: install system-speech lm-corpus
	nice -n 10 $(PY) -m ctcli.synth.speechdata --text build/lm/corpus/test.txt --out $(SPEECH_DATA)/speech-val-s51 --shards 1 --shard-size 400 --seed 2 --voices $(S51_VOICES) --no-codecs
	nice -n 10 $(PY) -m ctcli.synth.speechdata --text build/lm/corpus/train.txt --out $(SPEECH_DATA)/speech-s51 --dry-out $(SPEECH_DATA)/speech-s51-dry --shards 234 --shard-size 500 --seed 51 --voices $(S51_VOICES) --no-codecs --jobs $(JOBS)

# The fifth corpus (stage 10): Kokoro-82M's voice styles, blended per utterance,
# beside the classic voices, in one folder with dry twins: shards 0-7 of 1,000
# classic utterances (seed 73) and from shard 1000 on Kokoro-only shards of 250
# (seed 71; Kokoro renders ~1.3 s of speech per CPU-second, 5-10x slower than the
# classic voices, so it gets a process of its own).
KOKORO_SHARDS ?= 1040
data-speech-k: install system-speech lm-corpus
	nice -n 10 $(PY) -m ctcli.synth.speechdata --text build/lm/corpus/train.txt --out $(SPEECH_DATA)/speech-k --dry-out $(SPEECH_DATA)/speech-k-dry --voices kokoro --first 1000 --shards $(KOKORO_SHARDS) --shard-size 250 --seed 71 & k=$$!; \
	nice -n 10 $(PY) -m ctcli.synth.speechdata --text build/lm/corpus/train.txt --out $(SPEECH_DATA)/speech-k --dry-out $(SPEECH_DATA)/speech-k-dry --voices $(CLASSIC_VOICES) --shards 8 --shard-size 1000 --seed 73; \
	wait $$k

# Seven stages, as the bundled weights were made: 7.5k steps of the causal
# model; 6k more with a 3-frame (120 ms) top-layer look-ahead added (--init:
# the new layer starts as a pass-through); 6.5k with two 20-ms CTC frames per
# encoder frame (--upsample 2: the head is tiled); stage 4 on the seed-11
# corpus on a GPU (three time budgets, each resumed: 5, 13.2 and 20.6 minutes
# in all; batches of 480 s; on a CPU the same minutes train ~10x fewer steps);
# stage 5 back on the first corpus with two CPU workers; stage 6: two
# one-hour fine-tunes on the third corpus (the second takes an utterance's dry
# twin half the time), bundled as the mean of their weights and stage 5's;
# stage 7: 14 minutes on a GPU (one H100, shared with a second trainer; about
# 4,100 audio-seconds per second, 7,335 steps of 480 s) on the fourth corpus as
# it was rendered, bundled as the mean of its weights and stage 6's; stage 8:
# the running mean (--cmn-prior) in two CPU fine-tunes; stage 10: 100 minutes
# on one CPU thread on the fifth corpus (data-speech-k: Kokoro's blended voices
# beside the classic ones, each Kokoro utterance twice per pass) while its Kokoro
# shards were still being rendered on the other core.
train-asr-en: install
	$(PY) -m ctcli.train_asr --data $(SPEECH_DATA)/speech --val $(SPEECH_DATA)/speech-val \
	  --out runs/asr-en/stage1.pt --run-dir runs/asr-en --seed 1 --threads 2 --steps 7500 --resume
	$(PY) -m ctcli.train_asr --data $(SPEECH_DATA)/speech --val $(SPEECH_DATA)/speech-val \
	  --out runs/asr-en2/model.pt --run-dir runs/asr-en2 --seed 2 --threads 2 --lookahead 3 \
	  --steps 6000 --lr 0.001 --warmup 300 --val-every 500 --init runs/asr-en/stage1.pt --resume
	$(PY) -m ctcli.train_asr --data $(SPEECH_DATA)/speech --val $(SPEECH_DATA)/speech-val \
	  --out runs/asr-up2/model.pt --run-dir runs/asr-up2 --seed 4 --threads 2 --lookahead 3 \
	  --upsample 2 --steps 6500 --lr 0.0005 --warmup 300 --val-every 500 \
	  --init runs/asr-en2/model.pt --resume
	for m in 5 13.2 20.6; do $(PY) -m ctcli.train_asr --data $(SPEECH_DATA)/speech-s11 \
	  --val $(SPEECH_DATA)/speech-val-s11 --out runs/asr-gpu/model.pt --run-dir runs/asr-gpu \
	  --seed 21 --threads 1 --lookahead 3 --upsample 2 --steps 1000000 --frames-per-batch 48000 \
	  --lr 0.001 --warmup 150 --val-every 400 --minutes $$m --init runs/asr-up2/model.pt \
	  --resume || exit 1; done
	$(PY) -m ctcli.train_asr --data $(SPEECH_DATA)/speech --val $(SPEECH_DATA)/speech-val \
	  --out runs/asr-up4/model.pt --run-dir runs/asr-up4 --seed 7 --threads 1 --workers 2 \
	  --lookahead 3 --upsample 2 --steps 5500 --lr 0.0005 --warmup 300 --val-every 500 \
	  --init runs/asr-gpu/model.pt --resume
	for arm in "s6a" "s6b --dry-data $(SPEECH_DATA)/speech-s21-dry --p-dry 0.5"; do set -- $$arm; \
	  $(PY) -m ctcli.train_asr --data $(SPEECH_DATA)/speech-s21 --val $(SPEECH_DATA)/speech-val \
	  --out runs/$$1/model.pt --run-dir runs/$$1 --seed 31 --threads 1 --lookahead 3 --upsample 2 \
	  --steps 6000 --minutes 60 --lr 0.0004 --warmup 200 --val-every 500 \
	  --init runs/asr-up4/model.pt $${@:2} --resume || exit 1; done
	$(PY) -m ctcli.registry install asr-en runs/s6a/model.pt \
	  --average runs/s6b/model.pt runs/asr-up4/model.pt --alpha 0.8 --beta 0
	mkdir -p runs/s6 && cp models/asr-en/model.pt runs/s6/model.pt
	$(PY) -m ctcli.train_asr --data $(SPEECH_DATA)/speech-s51 --val $(SPEECH_DATA)/speech-val-s51 \
	  --dry-data $(SPEECH_DATA)/speech-s51-dry --p-dry 0.5 --out runs/s7b/model.pt --run-dir runs/s7b \
	  --seed 62 --threads 2 --lookahead 3 --upsample 2 --steps 200000 --minutes 14 \
	  --frames-per-batch 48000 --lr 0.0006 --warmup 300 --val-every 1000 --amp off --prefetch 0 \
	  --init runs/s6/model.pt --resume
	$(PY) -m ctcli.registry install asr-en runs/s7b/model.pt --average runs/s6/model.pt \
	  --alpha 0.8 --beta 0
	mkdir -p runs/s7 && cp models/asr-en/model.pt runs/s7/model.pt
	$(PY) -m ctcli.train_asr --data $(SPEECH_DATA)/speech-s21 --val $(SPEECH_DATA)/speech-val \
	  --dry-data $(SPEECH_DATA)/speech-s21-dry --p-dry 0.5 --out runs/cmn100/model.pt \
	  --run-dir runs/cmn100 --seed 81 --threads 1 --lookahead 3 --upsample 2 --cmn-prior 100 \
	  --minutes 60 --lr 0.0003 --warmup 100 --val-every 500 --init runs/s7/model.pt --resume
	$(PY) -m ctcli.train_asr --data $(SPEECH_DATA)/speech-s21 --val $(SPEECH_DATA)/speech-val \
	  --dry-data $(SPEECH_DATA)/speech-s21-dry --p-dry 0.5 --out runs/cmn2/model.pt \
	  --run-dir runs/cmn2 --seed 82 --threads 1 --workers 2 --lookahead 3 --upsample 2 \
	  --cmn-prior 100 --steps 1800 --lr 0.0002 --warmup 100 --val-every 500 \
	  --init runs/cmn100/model.pt --resume
	$(PY) -m ctcli.registry install asr-en runs/cmn2/model.pt --alpha 0.9 --beta 0 \
	  --blank-penalty 0.9
	mkdir -p runs/s8 && cp models/asr-en/model.pt runs/s8/model.pt
	$(PY) -m ctcli.train_asr --data $(SPEECH_DATA)/speech-k --val $(SPEECH_DATA)/speech-val \
	  --dry-data $(SPEECH_DATA)/speech-k-dry --p-dry 0.5 --engine-weight kokoro=2 \
	  --out runs/s10/model.pt --run-dir runs/s10 --seed 101 --threads 1 --lookahead 3 \
	  --upsample 2 --cmn-prior 100 --minutes 100 --lr 0.0003 --warmup 100 --val-every 500 \
	  --keep last --init runs/s8/model.pt --resume
	$(PY) -m ctcli.registry install asr-en runs/s10/model.pt --alpha 1.3 --beta 0 \
	  --blank-penalty 1.2 --beam 512 --token-min-logp -8 --beam-threshold 14

# ---- printed English lines (ocr-en) -------------------------------------------
FONT_DEBS := fonts-dejavu-core fonts-dejavu-extra fonts-liberation fonts-liberation2 fonts-freefont-ttf \
  fonts-urw-base35 fonts-crosextra-carlito fonts-crosextra-caladea fonts-linuxlibertine fonts-ebgaramond \
  fonts-cantarell fonts-roboto-unhinted fonts-open-sans fonts-lato fonts-texgyre fonts-inconsolata fonts-hack \
  fonts-firacode fonts-go fonts-sil-gentium fonts-sil-charis fonts-noto-mono fonts-anonymous-pro \
  fonts-courier-prime fonts-comic-neue fonts-stix fonts-quattrocento
.PHONY: fonts train-ocr-en
fonts:
	apt-get install -y -q --no-install-recommends $(FONT_DEBS) >/dev/null || \
	  (apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends $(FONT_DEBS) >/dev/null)

# Four stages, as the bundled weights were trained (models/ocr-en/README.md):
# 70,000 lines cropped `fixed`; fine-tuned on the same lines cropped `grow`;
# then on generator v2 lines with local-background normalisation (`local`)
# and the CNN padding mask; then on generator v3 (thinned strokes). The
# bundled run stopped stage 3 at step 3213 and went on from its step-2500
# export, and its stage 4 saw shards 0-3 and 8-11 only (see the card).
train-ocr-en: install fonts lm-corpus
	$(CTCLI) train --spec textline@1 --shards 7 --shard-size 10000 --steps 6400 --batch 32 --lr 0.001 \
	  --seed 1 --threads 1 --crop fixed --no-mask --out runs/ocr-en/stage1.pt --run-dir runs/ocr-en \
	  --data-dir data/ocr-en --resume
	$(CTCLI) train --spec textline@1 --shards 8 --shard-size 10000 --steps 3500 --batch 32 --lr 0.0005 \
	  --seed 3 --threads 1 --crop grow --no-mask --init runs/ocr-en/stage1.pt --out runs/ocr-en3/model.pt \
	  --run-dir runs/ocr-en3 --data-dir data/ocr-en-grow --resume
	$(CTCLI) train --spec textline@2 --shards 16 --shard-size 10000 --steps 6000 --batch 32 --lr 0.0005 \
	  --seed 5 --threads 2 --crop local --init runs/ocr-en3/model.pt --out runs/ocr-en5/model.pt \
	  --run-dir runs/ocr-en5 --data-dir data/ocr-en-local --resume
	$(CTCLI) train --spec textline@3 --shards 16 --shard-size 10000 --steps 3000 --batch 32 --lr 0.0003 \
	  --seed 6 --threads 2 --crop local --init runs/ocr-en5/model.pt --out runs/ocr-en6/model.pt \
	  --run-dir runs/ocr-en6 --data-dir data/ocr-en-v3 --resume
	$(PY) -m ctcli.registry install ocr-en runs/ocr-en6/model.pt
