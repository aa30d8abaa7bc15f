#!/usr/bin/env bash
# Installs the peer OCR engines that bench/ocr_peers.py compares against:
#   * tesseract (Debian tesseract-ocr + tesseract-ocr-eng), when missing and
#     running as root (apt-get; otherwise a note, and that peer is skipped);
#   * bench/.venv-ocr with RapidOCR (rapidocr-onnxruntime, its bundled PP-OCR
#     ONNX models) and onnxruntime, see bench/peers-ocr.txt. Kept apart from
#     the project's .venv. rapidocr-onnxruntime itself goes in with --no-deps
#     so that the headless OpenCV build replaces the GUI one it asks for.
# Idempotent: the venv is rebuilt only when peers-ocr.txt or this script changed.
set -euo pipefail
cd "$(dirname "$0")"
VENV=.venv-ocr
STAMP=$VENV/.installed
RAPIDOCR=rapidocr-onnxruntime==1.4.4
export PIP_DISABLE_PIP_VERSION_CHECK=1

debs=""
for p in tesseract-ocr tesseract-ocr-eng; do
  dpkg -s "$p" >/dev/null 2>&1 || debs="$debs $p"
done
if [ -n "$debs" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian packages:$debs" >&2
    apt-get install -y -q --no-install-recommends $debs >/dev/null 2>&1 ||
      { apt-get update -q >/dev/null 2>&1 &&
        apt-get install -y -q --no-install-recommends $debs >/dev/null 2>&1; } ||
      echo "warning: could not install$debs; tesseract is skipped" >&2
  else
    echo "note: tesseract missing (apt-get install$debs as root); it is skipped" >&2
  fi
fi

if [ -f "$STAMP" ] && [ "$STAMP" -nt peers-ocr.txt ] && [ "$STAMP" -nt setup_ocr_peers.sh ]; then
  exit 0
fi
rm -f "$STAMP"
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -r peers-ocr.txt
"$VENV/bin/python" -m pip install -q --no-deps "$RAPIDOCR"
"$VENV/bin/python" - <<'PY'
from importlib.metadata import version
from pathlib import Path

import rapidocr_onnxruntime

models = sorted(p.name for p in Path(rapidocr_onnxruntime.__file__).parent.glob("models/*.onnx"))
assert any("rec" in m for m in models), f"no recognition model in {models}"
print(
    f"OCR peers ready: rapidocr-onnxruntime {version('rapidocr-onnxruntime')} "
    f"(onnxruntime {version('onnxruntime')}), models {', '.join(models)}"
)
PY
touch "$STAMP"
