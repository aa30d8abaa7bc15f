#!/usr/bin/env bash
# Build KenLM's command-line tools (lmplz, build_binary, query) from the
# `kenlm` source distribution on PyPI. They are used only to convert ARPA
# files to KenLM's binary format (`make lm`) and as the reference in
# `make bench`; ctcli itself needs only the `kenlm` Python module.
#
# Usage: lm/build_kenlm_tools.sh [DEST]   (default: bench/.venv-kenlm-tools,
#        a path already covered by .gitignore's `bench/.venv*/`)
# Needs: cmake, g++, and Debian's boost / compression development packages
# (installed here with apt-get when running as root and they are missing).
# Takes about 4 minutes of compile on 2 cores; runs under `nice`.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEST="${1:-$ROOT/bench/.venv-kenlm-tools}"
KENLM_VERSION="${KENLM_VERSION:-0.3.0}"
PY="${PY:-$ROOT/.venv/bin/python}"
JOBS="${JOBS:-2}"
MAX_ORDER="${KENLM_MAX_ORDER:-8}"   # the expression LM is order 7

if [ -x "$DEST/bin/lmplz" ] && [ -x "$DEST/bin/build_binary" ]; then
  echo "kenlm tools already in $DEST/bin" >&2
  exit 0
fi

DEBS="cmake g++ libboost-program-options-dev libboost-system-dev libboost-thread-dev libboost-test-dev zlib1g-dev libbz2-dev liblzma-dev"
missing=""
for p in $DEBS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get install -y -q --no-install-recommends $missing >/dev/null 2>&1 || \
      { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends $missing >/dev/null; }
  else
    echo "error: missing Debian packages:$missing (run as root or install them)" >&2
    exit 1
  fi
fi

mkdir -p "$DEST/src"
cd "$DEST/src"
if [ ! -f "kenlm-$KENLM_VERSION.tar.gz" ]; then
  "$PY" -m pip download -q --no-deps --no-build-isolation --no-binary :all: \
    "kenlm==$KENLM_VERSION" -d .
fi
rm -rf "kenlm-$KENLM_VERSION"
tar xzf "kenlm-$KENLM_VERSION.tar.gz"
mkdir -p "kenlm-$KENLM_VERSION/build"
cd "kenlm-$KENLM_VERSION/build"
nice -n 15 cmake .. -DCMAKE_BUILD_TYPE=Release -DKENLM_MAX_ORDER="$MAX_ORDER" \
  -DENABLE_INTERPOLATE=OFF -DCOMPILE_TESTS=OFF >/dev/null
nice -n 15 make -j"$JOBS" lmplz build_binary query >/dev/null
mkdir -p "$DEST/bin"
cp bin/lmplz bin/build_binary bin/query "$DEST/bin/"
echo "kenlm tools in $DEST/bin" >&2
