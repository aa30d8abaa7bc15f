#!/usr/bin/env bash
# `make bench`: every benchmark in one run, each printing its own table.
# Peers live in their own virtualenvs (bench/.venv-*), made by the scripts.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
status=0
for b in cli decoder lmbuild ocr ocr_peers speech stream; do
  if [ -f "bench/$b.py" ]; then
    if [ "$b" = ocr_peers ]; then  # tesseract + bench/.venv-ocr; idempotent
      bash bench/setup_ocr_peers.sh || echo "bench/setup_ocr_peers.sh failed; missing peers are skipped"
    fi
    echo "=================== bench/$b.py"
    "$PY" "bench/$b.py" "$@" || { echo "bench/$b.py failed (exit $?)"; status=1; }
  fi
done
exit $status
