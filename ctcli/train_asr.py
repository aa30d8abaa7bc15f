"""Acoustic-model training on synthetic speech shards (see ctcli.synth.speechdata).

`python -m ctcli.train_asr --data data/speech --val data/speech-val --out models/asr-en/model.pt --run-dir runs/asr-en`

* features: the shards' log-mel frames, normalised with global statistics
  measured on the training data and stored in the checkpoint (`features.mean`,
  `features.std`), so inference applies exactly the same transform;
* augmentation: SpecAugment (frequency and time masks), mel-axis warping (a
  vocal-tract-length perturbation in the feature domain), random gain;
* batches of similar length up to a frame budget; CTC loss; AdamW with
  warm-up then cosine decay; gradient clipping;
* `runs/<name>/state.pt` (model + optimiser + step) is written every few
  minutes and on SIGTERM, and `--resume` continues from it; the inference
  checkpoint is re-exported whenever validation WER does not get worse.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ctcli.audio import DEFAULT_FEATURES
from ctcli.errors import UsageError
from ctcli.train import (  # shared with the image trainer
    Prefetch,
    _lr_at,
    amp_context,
    load_train_state,
    resolve_device,
    save_train_state,
    sigterm_flag,
    warm_start,
)

ALPHABET = ["", " ", *"abcdefghijklmnopqrstuvwxyz", "'"]  # index 0 is the CTC blank


# Decoding defaults stored in the exported checkpoint: the word LM and its
# weight / word bonus, tuned on held-out synthetic speech (models/asr-en/README.md).
DECODING = {"default_lm": "en-4gram", "alpha": 0.5, "beta": 0.0}


@dataclass
class AsrConfig:
    data: str = "data/speech"  # training shards
    val: str = "data/speech-val"  # validation shards (held-out text)
    out: str = "models/asr-en/model.pt"
    run_dir: str = "runs/asr-en"
    seed: int = 1
    steps: int = 60000
    frames_per_batch: int = 12000  # input frames (10 ms) per step
    lr: float = 1.5e-3
    warmup: int = 1000
    weight_decay: float = 1e-2
    clip: float = 5.0
    # asr_conv_gru (GRU stack) or asr_conformer (chunk-attention conformer);
    # rnn_hidden / rnn_layers are the width and depth of either
    arch: str = "asr_conv_gru"
    conv_channels: int = 32
    rnn_hidden: int = 320
    rnn_layers: int = 3
    heads: int = 4  # conformer: attention heads
    ff_mult: int = 4  # conformer: feed-forward width / model width
    conv_kernel: int = 15  # conformer: causal depthwise convolution taps
    chunk: int = 8  # conformer: encoder frames (40 ms at stride 4) per attention chunk
    left_chunks: int = 4  # conformer: earlier chunks each frame attends to
    # 40 ms output frames; 2 (20 ms) learned no faster per step at twice the cost
    time_stride: int = 4
    lookahead: int = 0  # output frames of top-layer right context (ConvGRU.lookahead)
    back_chunk: int = 0  # encoder frames per chunk of a backward GRU layer (ConvGRU.back_chunk)
    # running mean normalisation: the global mean's weight in frames
    # (ctcli.audio.normalize; stored in the checkpoint's features; 0: global only)
    cmn_prior: float = 0.0
    # CTC frames per encoder frame (ConvGRU.upsample): 2 gives 20-ms CTC frames
    # at stride 4; a warm start from an upsample-1 model copies its head to
    # every sub-frame, so training starts from the same transcripts
    upsample: int = 1
    freq_masks: int = 2
    freq_mask_width: int = 12  # mel bins
    time_masks: int = 2
    time_mask_frac: float = 0.05  # of the utterance, per mask
    mel_warp: float = 0.1  # +- factor of the mel-axis warp
    val_every: int = 1000
    val_max: int = 300  # utterances scored per validation
    ckpt_every_s: float = 300.0
    log_every: int = 50
    threads: int = 1  # torch threads per worker
    # data-parallel worker processes on the CPU (gloo): each takes its own
    # batch of `frames_per_batch`, gradients are averaged, so one step sees
    # `workers` batches. Measured on 2 cores with the 6.66M network: two
    # one-thread workers 165-190 audio-s/s against 86-93 for one; two threads
    # in one process only 1.3-1.4x one thread (the GRU's small matrix
    # products parallelise poorly inside one process).
    workers: int = 1
    device: str = "auto"
    amp: str = "auto"  # mixed precision: auto | bf16 | off (ctcli.train.amp_context)
    # batches built ahead by a background thread while the device computes
    # (-1: 2 on CUDA, none on the CPU, where both would share the same cores).
    # On an H100 the GRU's training step alone runs at 9,000-11,700 audio-s/s,
    # but two trainers beside 13 corpus writers read only 2,650-4,150: the GPU
    # waited for batches built one after another. One trainer, 36 s, 480-s
    # batches: 374 steps (5,300-6,100 audio-s/s) without, 715 (8,800-12,100) with.
    prefetch: int = -1
    # start a new run from this checkpoint: its weights where names and shapes
    # match (layers it lacks, e.g. a new look-ahead, start fresh) and its
    # feature normalisation
    init: str = ""
    # a time budget (0: none): the cosine decay runs over whichever of `steps`
    # and `minutes` (training time, resumed time included) ends first, and
    # training stops there; for a machine lent for a fixed time
    minutes: float = 0.0
    # the same shards before the channel (speechdata --dry-out): each training
    # utterance is taken dry with probability p_dry where its twin exists, a
    # lighter channel mix without rendering again
    dry_data: str = ""
    p_dry: float = 0.0
    # "ENGINE=K,...": each pass lists every utterance of that TTS engine K times
    # (an integer), e.g. "kokoro=2" for a voice family still scarce in the corpus
    engine_weight: str = ""
    # which weights `out` holds at the end: "best" (the last validation whose
    # WER did not get worse) or "last" (the final weights, validated and exported
    # when the run ends, also when it is resumed after its end): for a
    # validation set that is not the target, e.g. new voices joining the corpus
    keep: str = "best"


class Shards:
    """All utterances of a shard directory in memory (float16 log-mel), and
    with `dry` a folder of twin shards (the same utterances before the channel,
    same names), their dry features where a twin exists (None elsewhere)."""

    def __init__(self, root: str | Path, dry: str | Path | None = None):
        self.feats: list[np.ndarray] = []
        self.dry: list[np.ndarray | None] = []
        self.texts: list[str] = []
        self.voices: list[str] = []  # "engine:voice" per utterance
        self.loaded: set[str] = set()
        self.root = Path(root)
        self.dry_root = Path(dry) if dry else None
        self.rescan()

    def rescan(self) -> int:
        added = 0
        for p in sorted(self.root.glob("shard-*.npz")):
            if p.name in self.loaded or p.name.endswith(".tmp.npz"):
                continue
            feats, texts, voices = _read_shard(p)
            dry: list[np.ndarray | None] = [None] * len(feats)
            if self.dry_root is not None and (self.dry_root / p.name).exists():
                dry, dry_texts, _ = _read_shard(self.dry_root / p.name)
                if dry_texts != texts:
                    raise ValueError(f"{self.dry_root / p.name}: not the twin of {p}")
            self.feats += feats
            self.dry += dry
            self.texts += texts
            self.voices += voices
            self.loaded.add(p.name)
            added += 1
        return added

    def __len__(self) -> int:
        return len(self.feats)

    def hours(self) -> float:
        return sum(f.shape[0] for f in self.feats) / 100 / 3600


def _read_shard(p: Path) -> tuple[list[np.ndarray], list[str], list[str]]:
    d = np.load(p)
    off = d["offsets"]
    feats = d["feats"]  # read once: each d[...] access re-reads the array from the archive
    n = len(off) - 1
    voices = [str(v) for v in d["voices"]] if "voices" in d else [""] * n
    return [feats[off[i] : off[i + 1]] for i in range(n)], [str(t) for t in d["texts"]], voices


def feature_stats(data: Shards, max_utts: int = 2000) -> tuple[list[float], list[float]]:
    x = np.concatenate([f.astype(np.float32) for f in data.feats[:max_utts]])
    return x.mean(0).round(5).tolist(), (x.std(0) + 1e-5).round(5).tolist()


def augment(x: np.ndarray, rng: np.random.Generator, cfg: AsrConfig) -> np.ndarray:
    """SpecAugment + mel warp + gain on one normalised [T, F] utterance."""
    t, f = x.shape
    if cfg.mel_warp > 0:
        a = 1 + rng.uniform(-cfg.mel_warp, cfg.mel_warp)
        src = np.clip(np.arange(f) / a, 0, f - 1)
        lo = np.floor(src).astype(int)
        hi = np.minimum(lo + 1, f - 1)
        w = (src - lo).astype(np.float32)
        x = x[:, lo] * (1 - w) + x[:, hi] * w
    x = x + rng.normal(0, 0.2)
    x = x.copy()
    for _ in range(cfg.freq_masks):
        wdt = rng.integers(0, cfg.freq_mask_width + 1)
        s = rng.integers(0, max(1, f - wdt))
        x[:, s : s + wdt] = 0.0
    for _ in range(cfg.time_masks):
        wdt = rng.integers(0, int(t * cfg.time_mask_frac) + 1)
        s = rng.integers(0, max(1, t - wdt))
        x[s : s + wdt] = 0.0
    return x


def _pick(data: Shards, i: int, rng: np.random.Generator, cfg: AsrConfig) -> np.ndarray:
    """Utterance i's features: its dry twin with probability p_dry where it has
    one (no draw at all when p_dry is 0, so runs without twins are unchanged)."""
    x = data.feats[i]
    if cfg.p_dry > 0 and data.dry[i] is not None and rng.random() < cfg.p_dry:
        x = data.dry[i]
    return x.astype(np.float32)


def _batch(data: Shards, b: list[int], features: dict, rng, cfg: AsrConfig, char_to_id: dict):
    """Utterances `b` as one training batch: their augmented, normalised
    features zero-padded to (batch, frames, mels), the frame counts, the label
    sequences and their lengths. All random draws come from `rng`, in order."""
    import torch

    from ctcli.audio import normalize

    xs = [augment(normalize(_pick(data, i, rng, cfg), features), rng, cfg) for i in b]
    lens = torch.tensor([x.shape[0] for x in xs])
    x = torch.zeros(len(xs), int(lens.max()), xs[0].shape[1])
    for j, a in enumerate(xs):
        x[j, : a.shape[0]] = torch.from_numpy(a)
    tg = [torch.tensor([char_to_id[c] for c in data.texts[i]]) for i in b]
    return x, lens, tg, torch.tensor([len(t) for t in tg])


def prefetch_depth(prefetch: int, device: str) -> int:
    """Batches to build ahead: `prefetch` as given, or for -1 two on CUDA (the
    CPU is free while the GPU computes) and none on the CPU (both would share
    the same cores)."""
    return prefetch if prefetch >= 0 else (2 if device.startswith("cuda") else 0)


def parse_engine_weights(spec: str) -> dict[str, int]:
    """ "kokoro=2,piper=3" -> {"kokoro": 2, "piper": 3}; whole repeats of at least 1."""
    out: dict[str, int] = {}
    for item in (x.strip() for x in spec.split(",")):
        if not item:
            continue
        engine, sep, k = item.partition("=")
        if not sep or not engine.strip() or not k.strip().isdigit() or int(k) < 1:
            raise UsageError(
                f"--engine-weight: expected ENGINE=K with K a whole number >= 1, not {item!r}"
            )
        out[engine.strip()] = int(k)
    return out


def pass_indices(voices: list[str], weights: dict[str, int]) -> np.ndarray:
    """The utterances of one pass: each index once, or K times where its voice's
    engine (the part of "engine:voice" before the colon) has weight K."""
    reps = [weights.get(v.partition(":")[0], 1) for v in voices]
    return np.repeat(np.arange(len(voices)), reps)


def make_batches(lengths: np.ndarray, budget: int, rng: np.random.Generator) -> list[list[int]]:
    """Length-sorted windows cut into batches of at most `budget` padded frames, shuffled."""
    order = rng.permutation(len(lengths))
    batches = []
    for s in range(0, len(order), 2000):
        win = sorted(order[s : s + 2000].tolist(), key=lambda i: lengths[i])
        cur: list[int] = []
        for i in win:
            if cur and (len(cur) + 1) * max(lengths[i], lengths[cur[-1]]) > budget:
                batches.append(cur)
                cur = []
            cur.append(i)
        if cur:
            batches.append(cur)
    rng.shuffle(batches)
    return batches


def _greedy(lp: np.ndarray) -> str:
    best = lp.argmax(-1)
    out, prev = [], 0
    for k in best:
        if k != prev and k != 0:
            out.append(ALPHABET[k])
        prev = k
    return " ".join("".join(out).split())


def validate(model, val: Shards, features: dict, cfg: AsrConfig, device: str) -> dict:
    import torch

    from ctcli.audio import normalize
    from ctcli.metrics import cer, wer

    model.eval()
    refs, hyps = [], []
    with torch.inference_mode():
        for i in range(min(len(val), cfg.val_max)):
            x = torch.from_numpy(normalize(val.feats[i].astype(np.float32), features))[None].to(
                device
            )
            lp = model(x)[0].float().cpu().numpy()
            refs.append(val.texts[i])
            hyps.append(_greedy(lp))
    model.train()
    n_words = sum(len(r.split()) for r in refs)
    n_chars = sum(len(r) for r in refs)
    char_errs = [cer(r, h) * len(r) for r, h in zip(refs, hyps, strict=True)]
    by_engine: dict[str, list[float]] = {}  # engine -> [char errors, ref chars]
    for i, (r, e) in enumerate(zip(refs, char_errs, strict=True)):
        tot = by_engine.setdefault(val.voices[i].split(":")[0] or "?", [0.0, 0])
        tot[0] += e
        tot[1] += len(r)
    return {
        "val_wer": sum(wer(r, h) * len(r.split()) for r, h in zip(refs, hyps, strict=True))
        / max(1, n_words),
        "val_cer": sum(char_errs) / max(1, n_chars),
        "cer_by_engine": {k: round(v[0] / max(1, v[1]), 4) for k, v in sorted(by_engine.items())},
        "example": {"ref": refs[0], "hyp": hyps[0]} if refs else {},
    }


class _Group:
    """The data-parallel process group of `fit` (one worker: no communication)."""

    def __init__(self, rank: int, world: int, port: int):
        self.rank, self.world = rank, world
        if world > 1:
            from datetime import timedelta

            import torch.distributed as dist

            dist.init_process_group(
                "gloo",
                init_method=f"tcp://127.0.0.1:{port}",
                rank=rank,
                world_size=world,
                timeout=timedelta(minutes=10),
            )

    def sum_(self, t):
        """Sum a tensor in place over the workers; returns it."""
        if self.world > 1:
            import torch.distributed as dist

            dist.all_reduce(t)
        return t

    def min_int(self, n: int) -> int:
        if self.world == 1:
            return n
        import torch
        import torch.distributed as dist

        t = torch.tensor([n])
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
        return int(t)

    def from_rank0(self, obj):
        if self.world == 1:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.destroy_process_group()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(cfg: AsrConfig, resume: bool, rank: int, port: int) -> None:
    fit(cfg, resume=resume, log=lambda m: None, rank=rank, port=port)


def fit(cfg: AsrConfig, resume: bool = False, log=print, rank: int = 0, port: int = 0) -> dict:
    """Train (rank 0 of `cfg.workers` processes: it starts the others, logs,
    validates and writes the state and the export)."""
    model_dims(cfg)  # an unknown --arch is refused before any data is loaded
    world = max(1, cfg.workers)
    if cfg.minutes > 0 and world > 1:
        # the schedule would follow each worker's own clock and the replicas drift
        raise UsageError("--minutes works with one worker only")
    if not 0.0 <= cfg.p_dry <= 1.0:
        raise UsageError(f"--p-dry must be between 0 and 1, not {cfg.p_dry}")
    if cfg.p_dry > 0 and not cfg.dry_data:
        raise UsageError("--p-dry needs --dry-data (speechdata --dry-out)")
    parse_engine_weights(cfg.engine_weight)  # a malformed spec is refused before any data loads
    if cfg.keep not in ("best", "last"):
        raise UsageError(f"--keep: best or last, not {cfg.keep!r}")
    if world > 1 and rank == 0:
        import multiprocessing as mp

        port = _free_port()
        ctx = mp.get_context("spawn")
        for r in range(1, world):
            ctx.Process(target=_worker, args=(cfg, resume, r, port), daemon=True).start()
    group = _Group(rank, world, port)
    try:
        return _fit(cfg, resume, log, group)
    finally:
        group.close()


def _lr_now(step: int, elapsed_s: float, cfg: AsrConfig) -> float:
    """The step schedule (ctcli.train._lr_at); with a time budget its decay
    follows whichever of the step and time fractions is further along."""
    return _lr_at(step, cfg, elapsed_s / (cfg.minutes * 60) if cfg.minutes > 0 else 0.0)


def _tile_head(model, src, name: str) -> bool:
    """Warm start of an upsampled head (`--upsample k`) from a model with one
    CTC frame per encoder frame: each of the k sub-frames gets the source
    head's weights, so the model starts emitting every label k times in a
    row, which CTC collapses into the source's transcripts."""
    import torch

    if name not in ("head.weight", "head.bias"):
        return False
    theirs, own = src.state_dict()[name], model.state_dict()[name]
    k = own.shape[0] // theirs.shape[0]
    if own.shape[1:] != theirs.shape[1:] or k * theirs.shape[0] != own.shape[0]:
        return False
    with torch.no_grad():
        # sub-frame j of class c is row j*V + c of the head (B x T x k*V -> B x T*k x V)
        model.get_parameter(name).copy_(theirs.repeat(k, *([1] * (theirs.dim() - 1))))
    return True


def model_dims(cfg: AsrConfig) -> dict:
    """The architecture's constructor arguments from the training config."""
    dims = dict(
        n_classes=len(ALPHABET),
        n_mels=DEFAULT_FEATURES["n_mels"],
        conv_channels=cfg.conv_channels,
        time_stride=cfg.time_stride,
        upsample=cfg.upsample,
    )
    if cfg.arch == "asr_conv_gru":
        return dict(
            dims,
            rnn_hidden=cfg.rnn_hidden,
            rnn_layers=cfg.rnn_layers,
            lookahead=cfg.lookahead,
            back_chunk=cfg.back_chunk,
        )
    if cfg.arch == "asr_conformer":
        return dict(
            dims,
            d_model=cfg.rnn_hidden,
            layers=cfg.rnn_layers,
            heads=cfg.heads,
            ff=cfg.ff_mult * cfg.rnn_hidden,
            kernel=cfg.conv_kernel,
            chunk=cfg.chunk,
            left_chunks=cfg.left_chunks,
        )
    raise ValueError(f"unknown --arch {cfg.arch!r}: asr_conv_gru or asr_conformer")


def _fit(cfg: AsrConfig, resume: bool, log, group: _Group) -> dict:
    import torch
    from torch import nn

    from ctcli.model import build_model, save_checkpoint

    torch.set_num_threads(max(1, cfg.threads))
    device = resolve_device(cfg.device)
    run = Path(cfg.run_dir)
    lead = group.rank == 0
    if lead:
        run.mkdir(parents=True, exist_ok=True)
    state_path = run / "state.pt"
    data, val = Shards(cfg.data, cfg.dry_data or None), Shards(cfg.val)
    while len(data) == 0:
        log(f"waiting for shards in {cfg.data} ...")
        time.sleep(30)
        data.rescan()
    log(
        f"train {len(data):,} utts ({data.hours():.1f} h), val {len(val):,} utts"
        + (f", {group.world} workers" if group.world > 1 else "")
    )
    dims = model_dims(cfg)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.arch, **dims).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, best, elapsed0 = 0, float("inf"), 0.0
    features = dict(DEFAULT_FEATURES)
    resumed = resume and state_path.exists()
    if resumed:
        st = load_train_state(state_path, model, opt, device)
        step, best, elapsed0 = int(st["step"]), float(st["best"]), float(st["elapsed"])
        features = json.loads(st["features"])
        log(f"resumed at step {step} (best val WER {best:.4f})")
    elif cfg.init:
        src, fresh = warm_start(model, cfg.init, strict=False)
        fresh = [k for k in fresh if not _tile_head(model, src.module, k)]
        features = dict(src.meta["features"])
        n = len(model.state_dict())
        log(f"initial weights from {cfg.init}: {n - len(fresh)}/{n} tensors; new: "
            + (", ".join(fresh) or "none"))  # fmt: skip
    else:
        features["mean"], features["std"] = feature_stats(data)
    if cfg.cmn_prior > 0 and not resumed:  # a resumed run keeps its state's features
        features["cmn_prior"] = cfg.cmn_prior
    features = group.from_rank0(features)  # the same normalisation on every worker
    log(f"config {json.dumps(asdict(cfg))}")
    amp_ctx, amp_label = amp_context(device, cfg.amp)
    prefetch = prefetch_depth(cfg.prefetch, device)
    log(
        f"device {device} ({amp_label}), params {sum(p.numel() for p in model.parameters()):,}"
        + (f", {prefetch} batches built ahead" if prefetch else "")
    )
    char_to_id = {c: i for i, c in enumerate(ALPHABET) if i}
    ctc = nn.CTCLoss(blank=0, zero_infinity=True)
    signal = sigterm_flag()
    # with several workers, stopping is agreed at each step's gradient
    # exchange, so that no worker waits for a step another has left out
    stop = signal if group.world == 1 else {"flag": False}
    t0 = t_ckpt = t_log = time.time()

    def elapsed() -> float:  # training seconds, resumed time included
        return elapsed0 + time.time() - t0

    loss_sum = loss_n = frames = 0
    metrics: dict = {}

    def save_state():
        if not lead:
            return
        save_train_state(
            state_path, model, opt, step, best, elapsed(),
            features=json.dumps(features),
        )  # fmt: skip

    def export(m: dict):
        if not lead:
            return
        save_checkpoint(
            cfg.out,
            model,
            arch=cfg.arch,
            dims=dims,
            kind="audio",
            alphabet=ALPHABET,
            blank=0,
            features=features,
            frame_stride=cfg.time_stride * features["hop"] / features["sample_rate"] / cfg.upsample,
            extra={
                **DECODING,
                "training": {**asdict(cfg), "step": step, "hours": round(data.hours(), 2)},
                "metrics": m,
            },
        )

    model.train()

    def out_of_time() -> bool:
        return cfg.minutes > 0 and elapsed() >= cfg.minutes * 60

    weights = parse_engine_weights(cfg.engine_weight)
    last = step >= cfg.steps or out_of_time()  # whether the run is over
    while not last and not stop["flag"]:
        if data.rescan():
            log(f"train now {len(data):,} utts ({data.hours():.1f} h)")
        rng = np.random.default_rng([cfg.seed, step])
        # every worker uses the utterances all of them have loaded (shards may
        # still be arriving) and the same batch order; worker r takes batch r
        # of each group of `world`
        n = group.min_int(len(data))
        idx = pass_indices(data.voices[:n], weights)  # 0..n-1, weighted engines repeated
        lengths = np.array([data.feats[i].shape[0] for i in idx])
        batches = [
            [int(idx[j]) for j in b] for b in make_batches(lengths, cfg.frames_per_batch, rng)
        ]
        if len(batches) < group.world:
            raise ValueError(
                f"{len(batches)} batch(es) per pass over the data for {group.world} workers: "
                "lower --frames-per-batch or --workers"
            )
        aug_rng = rng if group.world == 1 else np.random.default_rng([cfg.seed, step, group.rank])
        mine = [
            batches[g0 + group.rank] for g0 in range(0, len(batches) - group.world + 1, group.world)
        ]
        # built in the same order, with the same draws, whether or not ahead of time
        built = (_batch(data, b, features, aug_rng, cfg, char_to_id) for b in mine)
        with Prefetch(built, prefetch) if prefetch else contextlib.closing(built) as stream:
            for x, lens, tg, tl in stream:
                if last or stop["flag"]:
                    break
                for g in opt.param_groups:
                    g["lr"] = lr = _lr_now(step, elapsed(), cfg)
                with amp_ctx:
                    lp = model(x.to(device), lens.to(device))
                il = model.output_lengths(lens).clamp(max=lp.shape[1])
                loss = ctc(lp.transpose(0, 1).float(), torch.cat(tg), il, tl)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if group.world > 1:  # average the gradients; any worker's SIGTERM stops all
                    params = [p for p in model.parameters() if p.grad is not None]
                    flat = torch.cat([p.grad.reshape(-1) for p in params] + [torch.zeros(1)])
                    flat[-1] = float(signal["flag"])
                    group.sum_(flat)
                    stop["flag"] = bool(flat[-1] > 0)
                    flat /= group.world
                    k = 0
                    for p in params:
                        p.grad.copy_(flat[k : k + p.numel()].view_as(p.grad))
                        k += p.numel()
                nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
                opt.step()
                step += 1
                last = step >= cfg.steps or out_of_time()
                loss_sum += float(loss.detach())
                loss_n += 1
                frames += int(lens.sum())
                if step % cfg.log_every == 0:
                    tot = group.sum_(torch.tensor([loss_sum, float(frames)], dtype=torch.float64))
                    loss_sum, frames = float(tot[0]) / group.world, int(tot[1])
                    dt = time.time() - t_log
                    log(
                        f"step {step}/{cfg.steps} loss {loss_sum / loss_n:.3f} lr {lr:.2e} "
                        f"{frames / 100 / dt:.1f} audio-s/s elapsed {elapsed() / 60:.1f} min"
                    )
                    loss_sum = loss_n = frames = 0
                    t_log = time.time()
                if step % cfg.val_every == 0 or last:
                    if not lead:  # the first worker validates, exports and saves
                        group.barrier()
                        continue
                    metrics = (
                        validate(model, val, features, cfg, device)
                        if len(val)
                        else {"val_wer": float("nan")}
                    )
                    metrics.update(step=step, minutes=round(elapsed() / 60, 1))
                    with open(run / "metrics.jsonl", "a") as f:
                        f.write(json.dumps(metrics) + "\n")
                    better = not metrics["val_wer"] > best  # nan (no val set) always exports
                    log(
                        f"VAL step {step} WER {metrics['val_wer']:.4f} CER {metrics.get('val_cer', float('nan')):.4f} "
                        + "".join(
                            f"{k} {v:.3f} " for k, v in metrics.get("cer_by_engine", {}).items()
                        )
                        + f"{metrics.get('example', '')}"
                        + (" (exported)" if better else "")
                    )
                    if better:
                        best = (
                            metrics["val_wer"] if metrics["val_wer"] == metrics["val_wer"] else best
                        )
                        export(metrics)
                    save_state()
                    group.barrier()
                    t_ckpt = time.time()
                elif time.time() - t_ckpt > cfg.ckpt_every_s:
                    save_state()
                    t_ckpt = time.time()
    if cfg.keep == "last" and lead and not stop["flag"]:
        if metrics.get("step") != step:  # a run resumed after its end has not validated
            metrics = validate(model, val, features, cfg, device) if len(val) else {}
            metrics.update(step=step, minutes=round(elapsed() / 60, 1))
        export(metrics)
        log(f"exported the last weights (step {step}) to {cfg.out}")
    save_state()
    log(
        ("stopped by SIGTERM" if stop["flag"] else "done")
        + f" at step {step}; state in {state_path}"
    )
    return metrics


HELP = {
    "data": "training shard folder (python -m ctcli.synth.speechdata); new shards join as they appear",
    "val": "validation shard folder (held-out text)",
    "out": "inference checkpoint, re-exported when validation WER does not get worse",
    "run_dir": "state.pt (resume), metrics.jsonl",
    "steps": "optimiser steps in total (the LR schedule's length; raise it to continue)",
    "frames_per_batch": "10-ms input frames per batch and worker",
    "lr": "peak learning rate (AdamW), cosine decay after the warm-up",
    "warmup": "linear warm-up steps",
    "time_stride": "input frames per output frame: 2 or 4",
    "arch": "asr_conv_gru (GRU stack) or asr_conformer (chunk-attention conformer)",
    "rnn_hidden": "model width: GRU units, or the conformer's d_model",
    "rnn_layers": "GRU layers or conformer blocks",
    "lookahead": "GRU: output frames of right context for the top layer",
    "back_chunk": "GRU: a backward GRU layer over chunks of this many encoder frames, "
    "right context up to one chunk (0: none; a warm start begins as the model without it)",
    "cmn_prior": "subtract a running mean of the frames so far, pooled with this many frames "
    "of the global mean (0: the global mean only; kept in the checkpoint)",
    "upsample": "CTC frames per encoder frame (2 at stride 4: 20-ms CTC frames)",
    "val_every": "steps between validations",
    "threads": "torch threads per worker",
    "workers": "data-parallel CPU processes (2 on 2 cores: about 1.9x one, where 2 threads give 1.3x)",
    "device": "auto | cpu | cuda[:N]",
    "amp": "mixed precision: auto | bf16 | off",
    "prefetch": "batches built ahead by a background thread (-1: 2 on CUDA, 0 on the CPU)",
    "init": "start a new run from this checkpoint's matching weights and feature statistics",
    "dry_data": "twin shards before the channel (speechdata --dry-out); with --p-dry",
    "p_dry": "probability of training on an utterance's dry twin where it has one",
    "keep": "weights in --out at the end: best (by validation WER) or last (the final ones)",
    "engine_weight": "ENGINE=K[,...]: every utterance of that TTS engine K times per pass "
    "(e.g. kokoro=2); repeatable",
    "minutes": "time budget in minutes of training, resumed time included (0: none); the LR "
    "decays over whichever of --steps and --minutes ends first; one worker only",
}


def main(argv: list[str] | None = None, prog: str = "python -m ctcli.train_asr") -> None:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    for k, v in asdict(AsrConfig()).items():
        if k == "engine_weight":  # repeatable: each use adds to the others
            ap.add_argument("--engine-weight", action="append", default=[], help=HELP[k])
            continue
        ap.add_argument(
            "--" + k.replace("_", "-"),
            type=type(v),
            default=v,
            help=f"{HELP[k]} (default: {v})" if k in HELP else f"default: {v}",
        )
    ap.add_argument("--resume", action="store_true", help="continue from RUN_DIR/state.pt")
    a = vars(ap.parse_args(argv))
    a["engine_weight"] = ",".join(a["engine_weight"])
    resume = a.pop("resume")
    cfg = AsrConfig(**{k: a[k] for k in asdict(AsrConfig())})

    def log(msg: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {msg}"
        print(line, file=sys.stderr, flush=True)  # logs on stderr, like every ctcli command

    fit(cfg, resume=resume, log=log)


if __name__ == "__main__":
    main()
