#!/usr/bin/env bash
# Creates bench/.venv-decoder with the peer CTC decoders that bench/decoder.py
# compares against (pyctcdecode, ctc-beam-decoder, flashlight-text) and the
# numpy/kenlm they need. Kept apart from the project's .venv: pyctcdecode pins
# numpy<2. Idempotent: reinstalls only when bench/peers-decoder.txt changed.
set -euo pipefail
cd "$(dirname "$0")"
VENV=.venv-decoder
STAMP=$VENV/.installed
export PIP_DISABLE_PIP_VERSION_CHECK=1
if [ -f "$STAMP" ] && [ "$STAMP" -nt peers-decoder.txt ]; then
  exit 0
fi
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -r peers-decoder.txt
"$VENV/bin/python" - <<'PY'
import ctc_beam_decoder, flashlight.lib.text.decoder, kenlm, numpy, pyctcdecode  # noqa: F401
print(f"peer decoders ready (numpy {numpy.__version__}, kenlm LM support in ctc-beam-decoder: {ctc_beam_decoder.has_kenlm()})")
PY
touch "$STAMP"
