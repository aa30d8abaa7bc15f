"""Training: synthetic shards on disk, CTC loss, resumable checkpoints.

Data flow::

    generator(seed) -> RGB image -> ctcli.image.preprocess_line -> uint8 shard (.npz)
    shards -> width-bucketed batches -> CRNN -> CTC loss

Shards use the same preprocessing function as inference. Each shard k of a
run is drawn from generator seed ``seed_base + k``; evaluation uses seeds far
outside that range (see ``SEEDS``).

Two files per run:
  * ``state`` (``runs/<name>/state.pt``): model + optimiser + step, for --resume;
  * ``out`` (e.g. ``models/ocr-expr/model.pt``): the self-describing inference
    checkpoint, rewritten whenever held-out accuracy does not get worse.
"""

from __future__ import annotations

import json
import math
import os
import queue
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

# Seed ranges, kept disjoint so evaluation never sees training images.
SEEDS = {
    "train": (1000, 9999),  # shard k uses seed train_base + k
    "val": 7,  # held-out set logged during training
    "eval": 100_000,  # default for `ctcli eval` (and upwards)
    "examples": 424_242,  # models/*/examples
}


@dataclass
class TrainConfig:
    spec: str = "expr"  # generator name (ctcli.synth)
    out: str = "models/ocr-expr/model.pt"  # inference checkpoint
    run_dir: str = "runs/ocr-expr"  # state.pt, train.log, metrics.jsonl
    data_dir: str = "data/ocr-expr"  # shards
    seed: int = 1  # torch / batch-order seed
    steps: int = 12000  # optimiser steps in total
    batch: int = 32  # images per step
    lr: float = 2e-3  # peak learning rate (AdamW)
    warmup: int = 300  # steps of linear warm-up, then cosine to lr * 0.02
    weight_decay: float = 1e-4
    clip: float = 5.0  # gradient-norm clip
    height: int = 32  # model input height, px
    channels: tuple = (16, 32, 64, 128)
    rnn_hidden: int = 128
    rnn_layers: int = 2
    val_n: int = 500  # held-out images scored every val_every steps
    val_every: int = 500
    ckpt_every_s: float = 180.0  # seconds between resume checkpoints
    log_every: int = 50
    threads: int = 1  # torch CPU threads
    device: str = "auto"
    amp: str = "auto"  # mixed precision: auto | bf16 | off (see amp_context)
    # crop mode of ctcli.image.preprocess_line for new data; a data dir keeps
    # the mode its shards were made with (preprocess.json; none: "fixed")
    crop: str = "median"
    # width factor of resize_to_height for new data (a data dir records it too)
    stretch: float = 1.0
    shards: int = 20  # shards expected (generated separately or on demand)
    shard_size: int = 10000
    alphabet: str | None = None  # labels (blank excluded); None: the generator's alphabet
    manifest: str | None = None  # labelled `path<TAB>text` file instead of a generator
    extra: dict = field(default_factory=dict)  # stored in the exported checkpoint
    init: str | None = None  # start a new run from this checkpoint's weights (fine-tuning)
    # mask each image's padding in the CNN as inference does (the first
    # bundled weights were trained without it: --no-mask)
    mask: bool = True


# Model size per generator spec (TrainConfig defaults fit the 17-symbol captchas;
# printed English has 95 symbols in hundreds of fonts and gets a wider network).
SPEC_MODEL = {
    "textline": {"channels": (16, 32, 64, 128), "rnn_hidden": 160},
}


# Decoding defaults stored in the exported checkpoint (LM and its weights,
# tuned on held-out data; see each model card).
SPEC_DECODING = {
    "expr": {"default_lm": "expr-char", "alpha": 0.3, "beta": 0.0, "rerank": "expr"},
    "textline": {"default_lm": "en-char", "alpha": 0.6, "beta": 1.5},
}


def config_for(spec: str, **kw) -> TrainConfig:
    """TrainConfig with the spec's model size, overridden by explicit kwargs."""
    from ctcli.synth import spec_family

    return TrainConfig(spec=spec, **{**SPEC_MODEL.get(spec_family(spec), {}), **kw})


# --------------------------------------------------------------------------- data


# in a data dir: {"crop": mode, "spec": generator spec, "stretch": width
# factor} its shards were made with (no "stretch": 1)
PREPROCESS_FILE = "preprocess.json"


def data_crop(
    data_dir: str | os.PathLike, crop: str, spec: str | None = None, stretch: float = 1.0
) -> str:
    """The crop mode of a data dir's shards. A new dir takes `crop`, `spec`
    and `stretch` (recorded); shards made before crop modes existed (no
    record) are "fixed". A dir recorded with another generator spec or width
    stretch raises ValueError: one dir, one generator version, one geometry."""
    d = Path(data_dir)
    rec = d / PREPROCESS_FILE
    if rec.exists():
        info = json.loads(rec.read_text(encoding="utf-8"))
        if spec is not None and info.get("spec", spec) != spec:
            raise ValueError(f"{d} holds shards of spec {info['spec']!r}, not {spec!r}")
        if float(info.get("stretch", 1.0)) != stretch:
            raise ValueError(
                f"{d} holds shards stretched x{info.get('stretch', 1.0)}, not x{stretch}"
            )
        return str(info["crop"])
    if any(d.glob("*.npz")):
        if stretch != 1.0:
            raise ValueError(f"{d} holds shards stretched x1.0, not x{stretch}")
        return "fixed"
    d.mkdir(parents=True, exist_ok=True)
    info = {"crop": crop} if spec is None else {"crop": crop, "spec": spec}
    if stretch != 1.0:
        info["stretch"] = stretch
    rec.write_text(json.dumps(info) + "\n", encoding="utf-8")
    return crop


def make_shard(
    spec: str,
    seed: int,
    n: int,
    height: int,
    path: str | os.PathLike,
    crop: str = "median",
    stretch: float = 1.0,
) -> None:
    """Generate n samples with generator seed `seed`, preprocess, write one .npz atomically.
    Every shard of a data dir must share one crop mode and stretch (see data_crop)."""
    from ctcli.image import preprocess_line, rgb_to_gray
    from ctcli.synth import get_generator

    have = data_crop(Path(path).parent, crop, spec, stretch)
    if have != crop:
        raise ValueError(f"{Path(path).parent} holds shards cropped {have!r}, not {crop!r}")
    gen = get_generator(spec)(seed)
    cols, widths, texts = [], [], []
    for i in range(n):
        s = gen.sample(i)
        line = preprocess_line(rgb_to_gray(s.image), height, crop, stretch)
        cols.append(np.round(line.array * 255).astype(np.uint8))
        widths.append(line.array.shape[1])
        texts.append(s.text)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(
        tmp,
        pix=np.concatenate(cols, axis=1),
        widths=np.array(widths, np.int32),
        texts=np.array(texts),
    )
    os.replace(tmp, path)


def shard_path(data_dir: str, k: int) -> Path:
    return Path(data_dir) / f"train-{k:04d}.npz"


def generate_shards(cfg: TrainConfig, first: int = 0, last: int | None = None, log=print) -> None:
    """Generate train shards first..last-1 (skipping existing ones) and the val shard."""
    cfg.crop = data_crop(cfg.data_dir, cfg.crop, cfg.spec, cfg.stretch)
    val = Path(cfg.data_dir) / "val.npz"
    if not val.exists():
        make_shard(cfg.spec, SEEDS["val"], cfg.val_n, cfg.height, val, cfg.crop, cfg.stretch)
    for k in range(first, cfg.shards if last is None else last):
        p = shard_path(cfg.data_dir, k)
        if p.exists():
            continue
        t = time.time()
        make_shard(
            cfg.spec, SEEDS["train"][0] + k, cfg.shard_size, cfg.height, p, cfg.crop, cfg.stretch
        )
        log(f"shard {k} ({cfg.shard_size} images) in {time.time() - t:.0f}s -> {p}")


class LineSet:
    """Preprocessed uint8 lines held in memory: one column block per image."""

    def __init__(self):
        self.blocks: list[np.ndarray] = []  # per shard: H x sumW uint8
        self.offsets: list[np.ndarray] = []
        self.widths: list[np.ndarray] = []
        self.texts: list[np.ndarray] = []
        self.index: list[tuple[int, int]] = []  # (shard, item)
        self.loaded: set[str] = set()

    def add(self, path: Path) -> None:
        z = np.load(path)
        s = len(self.blocks)
        w = z["widths"].astype(np.int64)
        self.blocks.append(z["pix"])
        self.widths.append(w)
        self.offsets.append(np.concatenate([[0], np.cumsum(w)[:-1]]))
        self.texts.append(z["texts"])
        self.index.extend((s, i) for i in range(len(w)))
        self.loaded.add(str(path))

    def __len__(self) -> int:
        return len(self.index)

    def width(self, j: int) -> int:
        s, i = self.index[j]
        return int(self.widths[s][i])

    def get(self, j: int) -> tuple[np.ndarray, str]:
        s, i = self.index[j]
        o, w = self.offsets[s][i], self.widths[s][i]
        return self.blocks[s][:, o : o + w], str(self.texts[s][i])


def collate(items: list[tuple[np.ndarray, str]], char_to_id: dict[str, int]):
    """uint8 lines + texts -> (x B x 1 x H x Wmax float, widths, targets concat, target lengths)."""
    import torch

    h = items[0][0].shape[0]
    wmax = max(a.shape[1] for a, _ in items)
    x = np.zeros((len(items), 1, h, wmax), np.float32)
    for j, (a, _) in enumerate(items):
        x[j, 0, :, : a.shape[1]] = a / np.float32(255)
    targets = [char_to_id[c] for _, t in items for c in t]
    tl = [len(t) for _, t in items]
    return (
        torch.from_numpy(x),
        torch.tensor([a.shape[1] for a, _ in items]),
        torch.tensor(targets, dtype=torch.long),
        torch.tensor(tl, dtype=torch.long),
    )


def greedy_collapse(lp: np.ndarray, labels: list[str], blank: int) -> str:
    """Best path: argmax per frame, merge repeats, drop blanks."""
    ids = lp.argmax(-1)
    out, prev = [], -1
    for i in ids:
        if i != prev and i != blank:
            out.append(labels[i])
        prev = i
    return "".join(out)


# --------------------------------------------------------------------------- training


def _lr_at(step: int, cfg: TrainConfig, progress: float = 0.0) -> float:
    """Linear warm-up, then cosine decay to 2% of the peak over the remaining
    steps; `progress` (0-1, e.g. the spent part of a time budget) moves the
    decay on when it is further along than the steps are."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    p = min(1.0, max(progress, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)))
    return cfg.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * p)))


AMP_MODES = ("auto", "bf16", "off")


def amp_context(device: str, amp: str = "auto"):
    """(context manager, label) for mixed-precision forward passes.

    amp "auto" or "bf16": bfloat16 autocast on CPUs with native bf16 support
    (AVX512-BF16 / AMX: about 1.5x faster training steps here) and on CUDA
    devices that support bf16; fp32 elsewhere. "off": always fp32. Weights,
    optimiser state and the CTC loss stay fp32.
    """
    import contextlib

    import torch

    if amp not in AMP_MODES:
        raise ValueError(f"amp must be one of {', '.join(AMP_MODES)}, not {amp!r}")
    if amp == "off":
        return contextlib.nullcontext(), "fp32"
    if device.startswith("cuda"):
        ok = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        kind = "cuda"
    else:
        ok = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        kind = "cpu"
    if not ok:
        return contextlib.nullcontext(), "fp32"
    return torch.autocast(kind, dtype=torch.bfloat16), f"bf16 autocast ({kind})"


def save_train_state(path, model, opt, step: int, best: float, elapsed: float, **extra) -> None:
    """The resume file (model + optimiser + progress, plus trainer extras), atomically."""
    from ctcli.model import atomic_torch_save

    atomic_torch_save(
        {"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "best": best,
         "elapsed": elapsed, **extra},
        path,
    )  # fmt: skip


def load_train_state(path, model, opt, device: str) -> dict:
    """Restore model and optimiser from a resume file; returns it (step, best, elapsed, extras)."""
    import torch

    st = torch.load(path, map_location=device, weights_only=True)
    model.load_state_dict(st["model"])
    opt.load_state_dict(st["opt"])
    return st


class Prefetch:
    """Iterate over `items` with up to `depth` of them produced ahead by a
    background thread, so the next batches are built on the CPU while the
    device computes this one. Items come in order, and an exception raised
    while producing one is raised where that item would have been taken.
    `close()` (also on leaving a `with` block) stops the thread, when the
    consumer stops early too."""

    def __init__(self, items, depth: int = 2):
        if depth < 1:
            raise ValueError(f"prefetch depth must be at least 1, not {depth}")
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._finished = False
        self._thread = threading.Thread(target=self._produce, args=(iter(items),), daemon=True)
        self._thread.start()

    def _produce(self, it) -> None:
        try:
            for item in it:
                if not self._put(("item", item)):
                    return
            self._put(("end", None))
        except BaseException as e:  # handed to the consumer
            self._put(("error", e))

    def _put(self, msg) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(msg, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self):
        return self

    def __next__(self):
        if self._finished:
            raise StopIteration
        kind, value = self._queue.get()
        if kind == "item":
            return value
        self._finished = True
        self._thread.join()
        if kind == "error":
            raise value
        raise StopIteration

    def close(self) -> None:
        self._finished = True
        self._stop.set()
        self._thread.join()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def sigterm_flag() -> dict:
    """{"flag": False}, set to True by SIGTERM (when called on the main thread),
    so a training loop can finish its step, save and exit cleanly."""
    import signal

    stop = {"flag": False}
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.update(flag=True))
    return stop


def warm_start(model, path: str, strict: bool = True) -> tuple:
    """Copy a checkpoint's weights into `model` before training (`--init`).
    strict: the architectures must match exactly. Otherwise every tensor
    whose name and shape match is copied and the others keep their fresh
    initialisation (e.g. a layer the checkpoint lacks). Returns (the loaded
    checkpoint, names of the tensors left fresh)."""
    from ctcli.model import load_model

    src = load_model(path)
    theirs = src.module.state_dict()
    if strict:
        model.load_state_dict(theirs)
        return src, []
    own = model.state_dict()
    take = {k: v for k, v in theirs.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(take, strict=False)
    return src, sorted(set(own) - set(take))


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def alphabet_for(spec: str, alphabet: str | None = None) -> list[str]:
    """Model labels: index 0 is the CTC blank (""), then the alphabet's characters."""
    if alphabet is None:
        from ctcli.synth import get_generator

        alphabet = get_generator(spec).alphabet
    return [""] + list(alphabet)


def make_manifest_shards(cfg: TrainConfig, val_fraction: float = 0.02, log=print) -> str:
    """Preprocess a labelled manifest into shards (+ val.npz); returns the alphabet seen."""
    from ctcli.evaluate import manifest_items
    from ctcli.image import preprocess_line

    items = [(g, t) for _, g, t in manifest_items(cfg.manifest) if g is not None]
    if not items:
        from ctcli.errors import UsageError

        raise UsageError(f"no readable images in {cfg.manifest}")
    alphabet = cfg.alphabet or "".join(sorted({c for _, t in items for c in t}))
    rng = np.random.default_rng(cfg.seed)
    order = rng.permutation(len(items))
    n_val = max(1, int(len(items) * val_fraction)) if len(items) > 10 else 0
    groups = {"val": order[:n_val] if n_val else order[:1]}
    rest = order[n_val:]
    for k in range(0, len(rest), cfg.shard_size):
        groups[f"train-{k // cfg.shard_size:04d}"] = rest[k : k + cfg.shard_size]
    Path(cfg.data_dir).mkdir(parents=True, exist_ok=True)
    cfg.crop = data_crop(cfg.data_dir, cfg.crop, stretch=cfg.stretch)
    for name, idx in groups.items():
        arrs = [
            np.round(
                preprocess_line(items[i][0], cfg.height, cfg.crop, cfg.stretch).array * 255
            ).astype(np.uint8)
            for i in idx
        ]
        tmp = Path(cfg.data_dir) / f"{name}.tmp.npz"
        np.savez(
            tmp,
            pix=np.concatenate(arrs, axis=1),
            widths=np.array([a.shape[1] for a in arrs], np.int32),
            texts=np.array([items[i][1] for i in idx]),
        )
        os.replace(tmp, Path(cfg.data_dir) / f"{name}.npz")
    cfg.shards = len(groups) - 1
    (Path(cfg.data_dir) / "alphabet.txt").write_text(alphabet, encoding="utf-8")
    log(f"manifest {cfg.manifest}: {len(items)} images, alphabet {alphabet!r}, {cfg.shards} shards")
    return alphabet


def export(model, cfg: TrainConfig, path: str, metrics: dict) -> None:
    from ctcli.model import save_checkpoint

    dims = dict(
        n_classes=len(alphabet_for(cfg.spec, cfg.alphabet)),
        height=cfg.height,
        channels=list(cfg.channels),
        rnn_hidden=cfg.rnn_hidden,
        rnn_layers=cfg.rnn_layers,
    )
    from ctcli.synth import spec_family

    extra = dict(SPEC_DECODING.get(spec_family(cfg.spec), {})) if not cfg.manifest else {}
    extra.update(cfg.extra)
    extra["training"] = {
        "spec": None if cfg.manifest else cfg.spec,
        "manifest": cfg.manifest,
        "seed": cfg.seed,
        "train_seeds": [SEEDS["train"][0], SEEDS["train"][0] + cfg.shards - 1],
        "shard_size": cfg.shard_size,
        **metrics,
    }
    save_checkpoint(
        path,
        model,
        arch="crnn",
        dims=dims,
        kind="image",
        alphabet=alphabet_for(cfg.spec, cfg.alphabet),
        blank=0,
        features={
            "height": cfg.height,
            "preprocess": "ctcli.image.preprocess_line",
            "crop": cfg.crop,
            "stretch": cfg.stretch,
            "split_lines": cfg.spec.startswith("textline"),  # printed pages: one line each
            "ink": "high",
        },
        frame_stride=2.0,
        extra=extra,
    )


def validate(model, val: LineSet, labels: list[str], char_to_id, batch: int = 64) -> dict:
    import torch

    from ctcli.metrics import edit_distance

    model.eval()
    n_ok = errs = chars = 0
    order = sorted(range(len(val)), key=val.width)
    with torch.inference_mode():
        for s in range(0, len(order), batch):
            items = [val.get(j) for j in order[s : s + batch]]
            x, w, _, _ = collate(items, char_to_id)
            lp = model(x, w).numpy()
            tl = model.output_lengths(w).tolist()
            for k, (_, ref) in enumerate(items):
                hyp = greedy_collapse(lp[k, : tl[k]], labels, 0)
                n_ok += hyp == ref
                errs += edit_distance(ref, hyp)
                chars += len(ref)
    model.train()
    return {"val_seq_acc": n_ok / max(1, len(val)), "val_cer": errs / max(1, chars)}


def fit(cfg: TrainConfig, resume: bool = False, log=print) -> dict:
    """Train until cfg.steps; resumable from run_dir/state.pt."""
    import torch
    from torch import nn

    from ctcli.model import build_model

    torch.set_num_threads(max(1, cfg.threads))
    device = resolve_device(cfg.device)
    if cfg.manifest:
        if not (Path(cfg.data_dir) / "val.npz").exists():
            cfg.alphabet = make_manifest_shards(cfg, log=log)
        else:  # resuming: the shards and their alphabet are already there
            cfg.alphabet = cfg.alphabet or (Path(cfg.data_dir) / "alphabet.txt").read_text(
                encoding="utf-8"
            )
            cfg.shards = len(list(Path(cfg.data_dir).glob("train-*.npz")))
    labels = alphabet_for(cfg.spec, cfg.alphabet)
    char_to_id = {c: i for i, c in enumerate(labels) if i}
    run = Path(cfg.run_dir)
    run.mkdir(parents=True, exist_ok=True)
    state_path = run / "state.pt"

    torch.manual_seed(cfg.seed)
    model = build_model(
        "crnn",
        n_classes=len(labels),
        height=cfg.height,
        channels=tuple(cfg.channels),
        rnn_hidden=cfg.rnn_hidden,
        rnn_layers=cfg.rnn_layers,
    ).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, best, elapsed0 = 0, -1.0, 0.0
    if resume and state_path.exists():
        st = load_train_state(state_path, model, opt, device)
        step, best, elapsed0 = int(st["step"]), float(st["best"]), float(st.get("elapsed", 0.0))
        log(f"resumed from {state_path} at step {step} (best val seq-acc {best:.4f})")
    elif resume:
        log(f"no {state_path}; starting fresh")
    if step == 0 and cfg.init:
        warm_start(model, cfg.init)
        log(f"initial weights from {cfg.init}")
    torch.manual_seed(cfg.seed * 1_000_003 + step)
    n_params = sum(p.numel() for p in model.parameters())
    # the data dir's own crop mode wins; its stretch must match
    cfg.crop = data_crop(cfg.data_dir, cfg.crop, cfg.spec, cfg.stretch)
    log(f"config {json.dumps(asdict(cfg))}")
    amp_ctx, amp_label = amp_context(device, cfg.amp)
    log(f"device {device} ({amp_label}), threads {torch.get_num_threads()}, params {n_params:,}")

    # data: the val shard, and every train shard present (re-scanned as the generator adds more)
    log(f"data {cfg.data_dir}, crop mode {cfg.crop}")
    val_path = Path(cfg.data_dir) / "val.npz"
    if not val_path.exists():
        make_shard(cfg.spec, SEEDS["val"], cfg.val_n, cfg.height, val_path, cfg.crop, cfg.stretch)
    val = LineSet()
    val.add(val_path)
    data = LineSet()

    def rescan():
        for k in range(cfg.shards):
            p = shard_path(cfg.data_dir, k)
            if str(p) not in data.loaded and p.exists():
                data.add(p)
                log(f"loaded {p} ({len(data):,} images in memory)")

    rescan()
    while len(data) == 0:
        log("waiting for the first shard ...")
        time.sleep(15)
        rescan()

    ctc = nn.CTCLoss(blank=0, zero_infinity=True)
    model.train()
    t_start, t_ckpt = time.time(), time.time()
    loss_sum = loss_n = imgs = 0
    t_log = time.time()
    chunk = 100  # steps per batch plan
    metrics: dict = {}

    def save_state():
        save_train_state(state_path, model, opt, step, best, elapsed0 + time.time() - t_start)

    stop = sigterm_flag()

    while step < cfg.steps and not stop["flag"]:
        rescan()
        rng = np.random.default_rng([cfg.seed, step])
        idx = rng.integers(0, len(data), size=chunk * cfg.batch)
        # bucket by width inside windows of 16 batches: less padding, still random
        win = 16 * cfg.batch
        batches = []
        for s in range(0, len(idx), win):
            w_idx = sorted(idx[s : s + win].tolist(), key=data.width)
            batches += [w_idx[b : b + cfg.batch] for b in range(0, len(w_idx), cfg.batch)]
        rng.shuffle(batches)
        for b in batches:
            if step >= cfg.steps or stop["flag"]:
                break
            for g in opt.param_groups:
                g["lr"] = _lr_at(step, cfg)
            x, w, tg, tl = collate([data.get(j) for j in b], char_to_id)
            x, w = x.to(device), w.to(device)
            # the CNN masks each item's padding as at inference; no sequence
            # packing: batches are bucketed by width, so the GRU sees a little
            # extra background at the right, and packing would make its
            # backward pass about 1.8x slower on CPU
            with amp_ctx:
                lp = model(x, w, pack=False) if cfg.mask else model(x)  # B x T x V
            il = model.output_lengths(w).clamp(max=lp.shape[1])
            loss = ctc(lp.transpose(0, 1).float(), tg, il.cpu(), tl)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
            opt.step()
            step += 1
            loss_sum += float(loss.detach())
            loss_n += 1
            imgs += len(b)
            if step % cfg.log_every == 0:
                dt = time.time() - t_log
                log(
                    f"step {step}/{cfg.steps} loss {loss_sum / loss_n:.4f} lr {_lr_at(step, cfg):.2e} "
                    f"{imgs / dt:.0f} img/s data {len(data):,} elapsed {(elapsed0 + time.time() - t_start) / 60:.1f} min"
                )
                loss_sum = loss_n = imgs = 0
                t_log = time.time()
            if step % cfg.val_every == 0 or step == cfg.steps:
                metrics = validate(model, val, labels, char_to_id)
                metrics.update(
                    step=step, train_minutes=round((elapsed0 + time.time() - t_start) / 60, 1)
                )
                with open(run / "metrics.jsonl", "a") as f:
                    f.write(json.dumps(metrics) + "\n")
                improved = metrics["val_seq_acc"] >= best
                log(
                    f"VAL step {step} greedy seq-acc {metrics['val_seq_acc']:.4f} CER {metrics['val_cer']:.4f}"
                    + (" (exported)" if improved else "")
                )
                if improved:
                    best = metrics["val_seq_acc"]
                    export(model, cfg, cfg.out, metrics)
                save_state()
                t_ckpt = time.time()
                t_log = time.time()
            elif time.time() - t_ckpt > cfg.ckpt_every_s:
                save_state()
                t_ckpt = time.time()
    save_state()
    if stop["flag"]:
        log(
            f"stopped by SIGTERM at step {step}; state saved to {state_path} (continue with --resume)"
        )
        return metrics
    log(f"done: step {step}, best val seq-acc {best:.4f}")
    return metrics


def main(argv: list[str] | None = None) -> None:
    """`python -m ctcli.train {gen,fit} ...`: the same entry points as `ctcli train`."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m ctcli.train")
    p.add_argument("cmd", choices=["gen", "fit"])
    p.add_argument("--spec", default="expr")
    p.add_argument("--out", default=TrainConfig.out)
    p.add_argument("--run-dir", default=TrainConfig.run_dir)
    p.add_argument("--data-dir", default=TrainConfig.data_dir)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--steps", type=int, default=TrainConfig.steps)
    p.add_argument("--batch", type=int, default=TrainConfig.batch)
    p.add_argument("--lr", type=float, default=TrainConfig.lr)
    p.add_argument("--shards", type=int, default=TrainConfig.shards)
    p.add_argument("--shard-size", type=int, default=TrainConfig.shard_size)
    p.add_argument("--first", type=int, default=0)
    p.add_argument("--last", type=int, default=None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--crop", default=TrainConfig.crop)
    p.add_argument("--stretch", type=float, default=TrainConfig.stretch)
    p.add_argument("--device", default="auto")
    p.add_argument("--resume", action="store_true")
    a = p.parse_args(argv)
    cfg = TrainConfig(
        spec=a.spec,
        out=a.out,
        run_dir=a.run_dir,
        data_dir=a.data_dir,
        seed=a.seed,
        steps=a.steps,
        batch=a.batch,
        lr=a.lr,
        shards=a.shards,
        shard_size=a.shard_size,
        threads=a.threads,
        crop=a.crop,
        stretch=a.stretch,
        device=a.device,
    )

    def log(msg: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {msg}", flush=True)

    if a.cmd == "gen":
        generate_shards(cfg, a.first, a.last, log=log)
    else:
        fit(cfg, resume=a.resume, log=log)


if __name__ == "__main__":
    main()
