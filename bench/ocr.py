"""OCR throughput and load-time benchmark for the bundled image models.

Measures, on ONE torch thread (the acceptance setting):
  * model load time (cold process: import + torch.load + build);
  * lines/s in batch mode for batch sizes 1, 16, 64: preprocessing
    (ctcli.image.load_lines) + forward + greedy decoding, from decoded
    grayscale arrays (image generation excluded);
  * the same with PNG decoding included (decode_image on PNG bytes);
  * `ctcli transcribe`'s default decoding at batch 64 from PNG: beam 32 with
    the model's default LM (and, for ocr-expr, the arithmetic re-ranking).

Usage: python bench/ocr.py [--model ocr-expr] [--spec expr] [--n 1000] [--seed 100000]
(default: both bundled image models, ocr-expr on captchas and ocr-en on
held-out printed lines)
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--spec", default="expr", help="test images: a ctcli.synth spec")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=100000)
    a, _ = ap.parse_known_args()
    if a.model is None:
        status = 0
        for model, spec in (("ocr-expr", "expr"), ("ocr-en", "textline-heldout")):
            a.model, a.spec = model, spec
            status |= bench(a)
        return status
    return bench(a)


def bench(a) -> int:

    import torch
    from PIL import Image

    from ctcli.image import decode_image, load_lines, rgb_to_gray
    from ctcli.model import load_model
    from ctcli.synth import get_generator
    from ctcli.train import greedy_collapse

    try:
        from ctcli.registry import resolve_model

        path = resolve_model(a.model)
    except Exception:
        path = Path(a.model)
    if not Path(path).is_file():
        print(f"bench/ocr.py: no model at {path}; skipped")
        return 0

    torch.set_num_threads(1)
    # cold load in a fresh process: what `ctcli transcribe` pays once per run
    code = (
        "import time; t=time.perf_counter(); import torch; from ctcli.model import load_model; "
        "t1=time.perf_counter(); "
        f"load_model({str(path)!r}); print(t1-t, time.perf_counter()-t1)"
    )
    imp, cold = map(
        float,
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
        ).stdout.split(),
    )
    t = time.perf_counter()
    model = load_model(path)
    warm = time.perf_counter() - t
    line_opts = model.line_options  # height, line splitting and crop as in training

    gen = get_generator(a.spec)(a.seed)
    samples = [gen.sample(i) for i in range(a.n)]
    grays = [rgb_to_gray(s.image) for s in samples]
    pngs = []
    for s in samples:
        b = io.BytesIO()
        Image.fromarray(s.image).save(b, "PNG")
        pngs.append(b.getvalue())

    def greedy(lp):
        return greedy_collapse(lp, model.labels, model.blank)

    def run(batch: int, from_png: bool, decode=greedy) -> tuple[float, float, float]:
        ok = 0
        t0 = time.perf_counter()
        c0 = time.process_time()
        for s in range(0, a.n, batch):
            src = pngs[s : s + batch] if from_png else grays[s : s + batch]
            arrays, owner = [], []
            for k, x in enumerate(src):
                g = decode_image(x) if from_png else x
                lines = load_lines(g, **line_opts)
                arrays.extend(ln.array for ln in lines)
                owner.extend([k] * len(lines))
            texts = [[] for _ in src]
            for k, lp in zip(owner, model.log_probs(arrays), strict=True):
                texts[k].append(decode(lp))
            ok += sum("\n".join(t) == samples[s + k].text for k, t in enumerate(texts))
        return a.n / (time.perf_counter() - t0), a.n / (time.process_time() - c0), ok / a.n

    run(16, False)  # warm-up
    print(
        f"model {path} on {a.n} '{a.spec}' images ({Path(path).stat().st_size / 1e6:.1f} MB, "
        f"{sum(p.numel() for p in model.module.parameters()):,} params)"
    )
    print(
        f"load_model: fresh process {cold:.3f} s (+ {imp:.2f} s to import torch), warm {warm:.3f} s"
    )
    print(
        "lines/s: wall clock, and per CPU-second of this process (robust to other load on the machine)"
    )
    print(
        f"{'batch':>5} {'input':>6} {'lines/s wall':>13} {'lines/CPU-s':>12} {'greedy seq-acc':>15}"
    )
    for batch in (1, 16, 64):
        for from_png in (False, True):
            ips, cps, acc = run(batch, from_png)
            print(
                f"{batch:>5} {'png' if from_png else 'array':>6} {ips:>13.0f} {cps:>12.0f} {100 * acc:>14.2f}%"
            )
    lm = model.meta.get("default_lm")
    try:
        from ctcli.evaluate import make_beam

        beam = make_beam(model, 32, lm, None, None)
    except Exception as e:  # the LM is built separately (make lm)
        print(f"beam 32 + {lm}: skipped ({str(e).splitlines()[0]})")
        return 0
    run(16, True, beam)  # warm-up (compiles the decoder)
    ips, cps, acc = run(64, True, beam)
    label = f"beam 32 + {lm}" + (" + re-rank" if model.meta.get("rerank") else "")
    print(f"{label} (transcribe's default), batch 64, png: {ips:.0f} lines/s wall, "
          f"{cps:.0f} lines/CPU-s, seq-acc {100 * acc:.2f}%")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
