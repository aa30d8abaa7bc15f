"""OCR side by side: ctcli vs tesseract and RapidOCR on the same line images,
ONE CPU thread each; one table per test set (CER, line accuracy, lines/s and
ctcli's ratio to each peer).

Test sets (manifests `path<TAB>text` under bench/.cache/, made when missing):
  expr     --n arithmetic captchas, ctcli.synth.expr.ExprCaptchaGenerator
           (--seed, default 100000; training uses seeds < 10000), as PNG in
           bench/.cache/ocr-expr/; ctcli model ocr-expr (--expr-model).
  heldout  --n printed lines of the `textline-heldout` generator (fonts and
           text never used in training), same seed, bench/.cache/ocr-heldout/;
           ctcli model ocr-en (--en-model; auto: models/ocr-en/model.pt,
           else the training run's runs/ocr-en/model.pt).
  real     every line of bench/.cache/ocr-real/manifest.tsv: lines cut from
           real scanned pages that ship inside a PyPI package (bench/ocr_real.py;
           evaluation only); ctcli model ocr-en.

Engines (each one process for a whole set, reading the PNG files itself):
  tesseract  Debian tesseract-ocr 5.3.0 with tesseract-ocr-eng 4.1.0 (the
             tessdata_fast LSTM model), `tesseract LIST stdout -l eng --psm 7`:
             list mode (LIST names every image; pages come back separated by
             form feeds), page segmentation mode 7 (the image is one text
             line), OMP_THREAD_LIMIT=1.
  rapidocr   rapidocr-onnxruntime 1.4.4 in bench/.venv-ocr
             (bench/setup_ocr_peers.sh): its PP-OCRv4 recogniser
             (ch_PP-OCRv4_rec_infer.onnx, Chinese + English) only, i.e.
             use_det=False, use_cls=False; onnxruntime intra- and inter-op
             threads 1. This file is its worker too (--rapidocr-worker).
  ctcli      `python -m ctcli transcribe --model M -j 1 --device cpu -f jsonl
             --files-from LIST`: what a user gets (beam 32, the model's
             default LM and re-ranking), one torch thread; CTCLI_* variables
             are cleared. Without an ocr-en model (it may still be training),
             ctcli is skipped on heldout/real and only the peers run.

Scoring: ctcli.metrics over the raw strings. The only normalisation is
stripping whitespace around reference and hypothesis: no case folding, no
Unicode folding (a curly quote or a ligature from a peer is an error against
ASCII ground truth; an image that ctcli splits into two lines gives a
newline, also an error). CER = total edit distance / total reference
characters; line acc = share of lines read exactly right.

Speed: each engine's process is timed on the whole set (wall T_N; CPU time
C_N, user + system of the child) and --startup-runs times on the first image
only (medians T_1, C_1: process start, model load, one line). lines/s =
(N-1) / (T_N - T_1) and lines/CPU-s = (N-1) / (C_N - C_1): throughput with
start-up excluded; "startup" is T_1. Wall time suffers from other load on
the machine, CPU time much less, so the speed ratio uses lines/CPU-s. With
a small --n, ctcli's figure still moves by ~20% between runs: its start-up
(~4 CPU-s, mostly importing torch) dwarfs 100 captchas (~1 CPU-s).
Ratios: CER ratio = ctcli CER / peer CER (below 1: ctcli more accurate);
speed ratio = ctcli lines/CPU-s / peer lines/CPU-s (above 1: ctcli faster).
Per-line results go to bench/.cache/ocr-peers/<set>-<engine>.tsv
(path, reference, hypothesis).

Measured 2026-11-22, --n 100 (2 shared vCPUs, load average ~6 from two
trainings; ocr-en still training, so ctcli ran on captchas only):

  set       engine     CER   line acc  lines/CPU-s  startup s
  expr      ctcli       0.31%   99.0%      95-135       3.3-4.6
            tesseract  98.4%     0.0%     160-186       0.1
            rapidocr   66.1%     0.0%      37-42        0.6
  heldout   tesseract  13.2%    75.0%      68           0.1
            rapidocr   10.5%    65.0%      33           0.6
  real (70) tesseract   0.57%   84.3%      34           0.2
            rapidocr    0.69%   85.7%      11           0.8
  (tesseract reads almost nothing on captchas, hence its speed there. Some
  heldout images are degraded past reading by anyone, e.g. seed 100000 index
  5. The real set writes quotes TeX-style, ``like this'', where both peers
  give curly quotes: 4 edits, 0.12% CER, for each.)

Usage: python bench/ocr_peers.py [--n 1000] [--seed 100000]
       [--sets expr,heldout,real] [--engines ctcli,tesseract,rapidocr]
       [--en-model auto|NAME|PATH] [--expr-model ocr-expr] [--startup-runs 3]
       [--regen]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / ".cache"
RESULTS = CACHE / "ocr-peers"
OCR_PY = ROOT / "bench" / ".venv-ocr" / "bin" / "python"
EN_MODEL_PATHS = (ROOT / "models" / "ocr-en" / "model.pt", ROOT / "runs" / "ocr-en" / "model.pt")
NOT_INSTALLED = "not installed (run bench/setup_ocr_peers.sh)"
ONE_THREAD = {
    "OMP_NUM_THREADS": "1",
    "OMP_THREAD_LIMIT": "1",  # tesseract's OpenMP
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}


# ------------------------------------------------------------ RapidOCR worker
def rapidocr_worker(list_file: str) -> int:
    """Runs inside bench/.venv-ocr: recognise every image named in list_file,
    one JSON line {"text": ...} per image, in order (stdlib + rapidocr only)."""
    from rapidocr_onnxruntime import RapidOCR

    engine = RapidOCR(intra_op_num_threads=1, inter_op_num_threads=1)
    for path in Path(list_file).read_text(encoding="utf-8").splitlines():
        res, _ = engine(path, use_det=False, use_cls=False, use_rec=True)
        text = " ".join(str(r[0]) for r in res) if res else ""
        print(json.dumps({"text": text}), flush=True)
    return 0


# ------------------------------------------------------------------ engines
class EngineError(Exception):
    """The engine ran but its output could not be used."""


@dataclass
class Run:
    hyps: list[str]
    wall: float
    cpu: float


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run cmd; wall time and CPU time (user + system) of the child."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return proc, wall, cpu


def _tail(proc: subprocess.CompletedProcess) -> str:
    lines = (proc.stderr or proc.stdout or "").strip().splitlines()
    return lines[-1] if lines else f"exit {proc.returncode}"


class Engine:
    name = ""
    ok_codes = (0,)

    def unavailable(self) -> str | None:
        """Why the engine cannot run here, or None."""
        return None

    def version(self) -> str:
        return ""

    def command(self, list_file: Path, model: str | None) -> list[str]:
        raise NotImplementedError

    def parse(self, stdout: str, n: int) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return {**os.environ, **ONE_THREAD}

    def run(self, paths: list[str], model: str | None, list_file: Path) -> Run:
        list_file.write_text("".join(p + "\n" for p in paths), encoding="utf-8")
        proc, wall, cpu = _timed(self.command(list_file, model), self.env())
        if proc.returncode not in self.ok_codes:
            raise EngineError(_tail(proc))
        hyps = self.parse(proc.stdout, len(paths))
        if len(hyps) != len(paths):
            raise EngineError(f"{len(hyps)} results for {len(paths)} images")
        return Run(hyps, wall, cpu)


class Tesseract(Engine):
    name = "tesseract"

    def unavailable(self) -> str | None:
        if shutil.which("tesseract") is None:
            return NOT_INSTALLED
        r = subprocess.run(["tesseract", "--list-langs"], capture_output=True, text=True)
        if "eng" not in r.stdout.split():
            return "no English model (tesseract-ocr-eng); run bench/setup_ocr_peers.sh"
        return None

    def version(self) -> str:
        r = subprocess.run(["tesseract", "--version"], capture_output=True, text=True)
        out = (r.stdout or r.stderr).splitlines()[0]
        q = ["dpkg-query", "-W", "-f", "${Version}", "tesseract-ocr-eng"]
        eng = (
            subprocess.run(q, capture_output=True, text=True)
            if shutil.which("dpkg-query")
            else None
        )
        if eng is not None and eng.returncode == 0:
            out += f", tesseract-ocr-eng {eng.stdout.strip()}"
        return out + ", --psm 7, list mode"

    def command(self, list_file: Path, model: str | None) -> list[str]:
        return ["tesseract", str(list_file), "stdout", "-l", "eng", "--psm", "7"]

    def parse(self, stdout: str, n: int) -> list[str]:
        # One page per image, a form feed before every page but the first.
        pages = stdout.split("\f")
        if len(pages) == n + 1 and not pages[-1].strip():
            pages = pages[:-1]
        return pages


class RapidOCR(Engine):
    name = "rapidocr"

    def unavailable(self) -> str | None:
        return None if (OCR_PY.parent.parent / ".installed").exists() else NOT_INSTALLED

    def version(self) -> str:
        code = "from importlib.metadata import version as v; "
        code += "print(v('rapidocr-onnxruntime'), v('onnxruntime'))"
        r = subprocess.run([str(OCR_PY), "-c", code], capture_output=True, text=True)
        rap, ort = (r.stdout.split() + ["?", "?"])[:2]
        return f"rapidocr-onnxruntime {rap} (onnxruntime {ort}), recogniser only"

    def command(self, list_file: Path, model: str | None) -> list[str]:
        return [str(OCR_PY), str(Path(__file__).resolve()), "--rapidocr-worker", str(list_file)]

    def parse(self, stdout: str, n: int) -> list[str]:
        return [json.loads(ln)["text"] for ln in stdout.splitlines() if ln.strip()]


class Ctcli(Engine):
    name = "ctcli"
    ok_codes = (0, 1)  # 1: some inputs failed (their text is null)

    def version(self) -> str:
        return "ctcli transcribe, beam 32 + the model's default LM, -j 1"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CTCLI_")}
        return {**env, **ONE_THREAD}

    def command(self, list_file: Path, model: str | None) -> list[str]:
        return [sys.executable, "-m", "ctcli", "transcribe", "--model", str(model), "-j", "1",
                "--device", "cpu", "-f", "jsonl", "-q", "--files-from", str(list_file)]  # fmt: skip

    def parse(self, stdout: str, n: int) -> list[str]:
        out = []
        for ln in stdout.splitlines():
            if ln.strip():
                d = json.loads(ln)
                out.append(d.get("text") or "")
        return out


ENGINES = {e.name: e for e in (Ctcli(), Tesseract(), RapidOCR())}


# ------------------------------------------------------------------ test sets
@dataclass
class TestSet:
    name: str
    title: str
    rows: list[tuple[str, str]]  # (absolute path, reference)
    model: str | None  # ctcli model; None: ctcli skipped
    note: str = ""  # why ctcli is skipped


def read_manifest(path: Path) -> list[tuple[str, str]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        p, text = line.split("\t", 1)
        rows.append((str(p if Path(p).is_absolute() else path.parent / p), text))
    return rows


def generated_set(spec: str, folder: Path, n: int, seed: int, regen: bool) -> list[tuple[str, str]]:
    """n images of a ctcli.synth generator as PNG files plus manifest.tsv
    (its first line names spec, seed and a hash of the generator's source
    file); reused while those match and it holds at least n lines, unless
    regen."""
    import hashlib
    import inspect

    from ctcli.synth import get_generator

    gen_cls = get_generator(spec)
    src = Path(inspect.getsourcefile(gen_cls.__mro__[-2]))  # the module that defines it
    digest = hashlib.sha256(src.read_bytes()).hexdigest()[:12]
    manifest = folder / "manifest.tsv"
    header = f"# ctcli.synth spec {spec} seed {seed} {src.name} {digest}"
    if manifest.exists() and not regen:
        lines = manifest.read_text(encoding="utf-8").splitlines()
        rows = read_manifest(manifest)
        if lines and lines[0] == header and len(rows) >= n:
            rows = rows[:n]
            if all(Path(p).exists() for p, _ in rows):
                return rows
    from PIL import Image

    print(f"ocr_peers: rendering {n} {spec} images into {folder}", file=sys.stderr)
    folder.mkdir(parents=True, exist_ok=True)
    gen = gen_cls(seed)
    rows = []
    for i in range(n):
        s = gen.sample(i)
        if "\t" in s.text or "\n" in s.text:
            raise SystemExit(f"ocr_peers: {spec} sample {i} has a tab or newline: {s.text!r}")
        path = folder / f"{seed}-{i:06d}.png"
        Image.fromarray(s.image).save(path)
        rows.append((str(path), s.text))
    manifest.write_text(header + "\n" + "".join(f"{p}\t{t}\n" for p, t in rows), encoding="utf-8")
    return rows


def find_en_model(arg: str) -> str | None:
    if arg != "auto":
        if Path(arg).is_file():
            return str(Path(arg).resolve())
        try:
            from ctcli.registry import resolve_model

            return str(resolve_model(arg))
        except Exception:
            return None
    return next((str(p) for p in EN_MODEL_PATHS if p.is_file()), None)


def build_sets(a) -> list[TestSet]:
    wanted = [s.strip() for s in a.sets.split(",") if s.strip()]
    en = find_en_model(a.en_model)
    en_note = (
        "no ocr-en model yet (looked for "
        + ", ".join(str(p.relative_to(ROOT)) for p in EN_MODEL_PATHS)
        + "; --en-model PATH)"
        if a.en_model == "auto"
        else f"no model at {a.en_model}"
    )
    sets = []
    for name in wanted:
        if name == "expr":
            rows = generated_set("expr", CACHE / "ocr-expr", a.n, a.seed, a.regen)
            title = f"captchas: ExprCaptchaGenerator seed {a.seed}, ctcli model {a.expr_model}"
            sets.append(TestSet(name, title, rows, a.expr_model))
        elif name == "heldout":
            rows = generated_set("textline-heldout", CACHE / "ocr-heldout", a.n, a.seed, a.regen)
            title = (
                f"held-out printed lines: textline-heldout seed {a.seed}, ctcli model {en or '-'}"
            )
            sets.append(TestSet(name, title, rows, en, "" if en else en_note))
        elif name == "real":
            manifest = CACHE / "ocr-real" / "manifest.tsv"
            if not manifest.exists():
                subprocess.run([sys.executable, str(ROOT / "bench" / "ocr_real.py")])
            if not manifest.exists():
                print("ocr_peers: no real lines (bench/ocr_real.py failed); set skipped")
                continue
            rows = read_manifest(manifest)
            title = f"real scanned lines: {manifest.relative_to(ROOT)}, ctcli model {en or '-'}"
            sets.append(TestSet(name, title, rows, en, "" if en else en_note))
        else:
            raise SystemExit(f"ocr_peers: unknown set {name!r} (expr, heldout, real)")
    return sets


# ------------------------------------------------------------------ measuring
@dataclass
class Result:
    engine: str
    status: str = ""  # empty when measured, else why not
    cer: float = float("nan")
    acc: float = float("nan")
    lps: float = float("nan")  # lines per wall second, start-up excluded
    lpc: float = float("nan")  # lines per CPU second, start-up excluded
    startup: float = float("nan")  # wall seconds for the one-image run
    confusions: list = field(default_factory=list)  # (ref char, hyp char, count); "" = none


def measure(engine: Engine, ts: TestSet, startup_runs: int) -> Result:
    from ctcli.metrics import Scorer

    if engine.name == "ctcli" and ts.model is None:
        return Result(engine.name, f"skipped: {ts.note}")
    why = engine.unavailable()
    if why:
        return Result(engine.name, why)
    RESULTS.mkdir(parents=True, exist_ok=True)
    paths = [p for p, _ in ts.rows]
    base = f"{ts.name}-{engine.name}"
    try:
        full = engine.run(paths, ts.model, RESULTS / f"{base}.list")
        one = RESULTS / f"{base}.first.list"
        ones = [engine.run(paths[:1], ts.model, one) for _ in range(startup_runs)]
    except (EngineError, OSError, ValueError) as e:
        return Result(engine.name, f"failed: {e}")
    t1 = statistics.median(r.wall for r in ones)
    c1 = statistics.median(r.cpu for r in ones)
    n = len(paths)
    sc = Scorer()
    with open(RESULTS / f"{base}.tsv", "w", encoding="utf-8") as fh:
        for (path, ref), hyp in zip(ts.rows, full.hyps, strict=True):
            ref, hyp = ref.strip(), hyp.strip()
            sc.add(ref, hyp)
            esc = hyp.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
            fh.write(f"{path}\t{ref}\t{esc}\n")
    dw, dc = full.wall - t1, full.cpu - c1
    return Result(
        engine.name,
        cer=sc.cer,
        acc=sc.seq_acc,
        lps=(n - 1) / dw if n > 1 and dw > 0 else float("nan"),
        lpc=(n - 1) / dc if n > 1 and dc > 0 else float("nan"),
        startup=t1,
        confusions=sc.top_confusions(6),
    )


def _ratio(a: float, b: float) -> str:
    if a != a or b != b:  # nan
        return "-"
    if b == 0:
        return "0 / 0" if a == 0 else "inf"
    return f"{a / b:.3g}x"


def _show(ch: str) -> str:
    """A confusion side: ∅ for nothing, ␣ for a space, escapes for control characters."""
    if not ch:
        return "∅"
    return "␣" if ch == " " else ch if ch.isprintable() else repr(ch)[1:-1]


def print_table(ts: TestSet, results: list[Result]) -> None:
    chars = sum(len(r.strip()) for _, r in ts.rows)
    print(f"\n== {ts.name}: {len(ts.rows)} images, {chars} reference characters; {ts.title}")
    print(
        f"{'engine':10} {'CER':>8} {'line acc':>8} {'lines/s':>8} {'lines/CPU-s':>11} "
        f"{'startup s':>9} | {'ctcli CER ratio':>15} {'speed ratio':>11}"
    )
    ref = next((r for r in results if r.engine == "ctcli" and not r.status), None)
    for r in results:
        if r.status:
            print(f"{r.engine:10} {r.status}")
            continue
        cer_ratio = speed_ratio = "-"
        if ref is not None and r is not ref:
            cer_ratio, speed_ratio = _ratio(ref.cer, r.cer), _ratio(ref.lpc, r.lpc)
        print(
            f"{r.engine:10} {100 * r.cer:7.2f}% {100 * r.acc:7.1f}% {r.lps:8.1f} {r.lpc:11.1f} "
            f"{r.startup:9.2f} | {cer_ratio:>15} {speed_ratio:>11}"
        )
    for r in results:
        if r.confusions:
            conf = ", ".join(f"{_show(a)}→{_show(b)} {c}" for a, b, c in r.confusions)
            print(f"  {r.engine} top confusions (ref→hyp): {conf}")


def main() -> int:
    ap = argparse.ArgumentParser(description="ctcli vs tesseract and RapidOCR, one thread each")
    ap.add_argument("--n", type=int, default=1000, help="images per generated set")
    ap.add_argument("--seed", type=int, default=100000)
    ap.add_argument("--sets", default="expr,heldout,real")
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--en-model", default="auto", help="ocr-en model NAME|PATH (auto: see docs)")
    ap.add_argument("--expr-model", default="ocr-expr")
    ap.add_argument("--startup-runs", type=int, default=3, help="one-image runs (median)")
    ap.add_argument("--regen", action="store_true", help="re-render the generated sets")
    ap.add_argument("--rapidocr-worker", metavar="LIST", help=argparse.SUPPRESS)
    a, _ = ap.parse_known_args()  # bench/run.sh passes every bench the same arguments
    if a.rapidocr_worker:
        return rapidocr_worker(a.rapidocr_worker)
    sys.path.insert(0, str(ROOT))
    names = [e.strip() for e in a.engines.split(",") if e.strip()]
    unknown = [e for e in names if e not in ENGINES]
    if unknown:
        raise SystemExit(
            f"ocr_peers: unknown engine(s) {', '.join(unknown)} ({', '.join(ENGINES)})"
        )
    engines = [ENGINES[e] for e in names]
    sets = build_sets(a)
    print(
        "ctcli vs peer OCR engines, one CPU thread each; CER and line accuracy on the raw text "
        "(surrounding whitespace stripped); lines/s excludes start-up (see bench/ocr_peers.py); "
        f"load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    for e in engines:
        why = e.unavailable()
        print(f"  {e.name:10} {why or e.version()}")
    for ts in sets:
        results = [measure(e, ts, max(1, a.startup_runs)) for e in engines]
        print_table(ts, results)
    print(
        "\nctcli CER ratio = ctcli CER / peer CER (below 1: ctcli more accurate); "
        "speed ratio = ctcli lines/CPU-s / peer lines/CPU-s (above 1: ctcli faster)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
