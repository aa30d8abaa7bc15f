"""Bundled models and LMs: manifests in `models/` and `lm/`.

`models/MANIFEST.json`::

    {"models": [{"name", "kind": "image"|"audio", "file", "sha256", "size",
                 "alphabet", "default": bool, "default_lm", "description",
                 "route": "expr-check" (optional)}]}

Image routing: with no --model, an image goes first to a model marked
``"route": "expr-check"`` (the captcha reader) and stays there only when its
reading verifies itself; otherwise the default general image model reads it.

`lm/MANIFEST.json`::

    {"lms": [{"name", "file", "sha256", "size", "order", "unit": "word"|"char",
              "vocab_size", "unigrams", "corpus", "license", "test_perplexity"}]}

Names resolve through the manifests; anything else is taken as a path.
Directories can be overridden with CTCLI_MODELS_DIR and CTCLI_LM_DIR.
Nothing is ever downloaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ctcli.errors import LMLoadError, ModelLoadError

REPO_ROOT = Path(__file__).resolve().parent.parent


def models_dir() -> Path:
    return Path(os.environ.get("CTCLI_MODELS_DIR") or REPO_ROOT / "models")


def lm_dir() -> Path:
    return Path(os.environ.get("CTCLI_LM_DIR") or REPO_ROOT / "lm")


@dataclass(frozen=True)
class Entry:
    """One manifest entry (model or LM)."""

    name: str
    kind: str  # "image" | "audio" for models, "lm" for LMs
    path: Path
    sha256: str | None
    size: int | None
    info: dict = field(default_factory=dict)  # the raw manifest entry

    def verify(self) -> str:
        """Return "ok", "missing" or "mismatch"."""
        if not self.path.is_file():
            return "missing"
        if self.sha256 and sha256_file(self.path) != self.sha256:
            return "mismatch"
        return "ok"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _read_manifest(path: Path, key: str) -> list[dict]:
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        items = data.get(key, [])
        if not isinstance(items, list):
            raise ValueError(f"'{key}' is not a list")
        return items
    except (ValueError, OSError) as e:
        err = ModelLoadError if key == "models" else LMLoadError
        raise err(f"unreadable manifest {path}: {e}") from None


def list_models() -> list[Entry]:
    base = models_dir()
    return [
        Entry(
            m["name"], m.get("kind", "image"), base / m["file"], m.get("sha256"), m.get("size"), m
        )
        for m in _read_manifest(base / "MANIFEST.json", "models")
    ]


def list_lms() -> list[Entry]:
    base = lm_dir()
    return [
        Entry(m["name"], "lm", base / m["file"], m.get("sha256"), m.get("size"), m)
        for m in _read_manifest(base / "MANIFEST.json", "lms")
    ]


def _check(entry: Entry, err: type[Exception]) -> Path:
    state = entry.verify()
    if state == "missing":
        raise err(f"{entry.name}: file {entry.path} is missing")
    if state == "mismatch":
        raise err(f"{entry.name}: sha256 mismatch for {entry.path} (file changed or corrupt)")
    return entry.path


def find_model(name: str) -> Entry | None:
    return next((m for m in list_models() if m.name == name), None)


def find_lm(name: str) -> Entry | None:
    return next((m for m in list_lms() if m.name == name), None)


def resolve_model(name_or_path: str | Path) -> Path:
    """A bundled model name (verified) or a path to a checkpoint."""
    entry = find_model(str(name_or_path))
    if entry is not None:
        return _check(entry, ModelLoadError)
    p = Path(name_or_path)
    if p.is_file():
        return p
    names = ", ".join(m.name for m in list_models()) or "none bundled"
    raise ModelLoadError(f"no model named or at '{name_or_path}' (bundled: {names})")


def default_model(kind: str) -> Entry | None:
    """The bundled default model for an input kind ("image" | "audio")."""
    candidates = [m for m in list_models() if m.kind == kind]
    for m in candidates:
        if m.info.get("default"):
            return m
    return candidates[0] if candidates else None


def resolve_lm(name_or_path: str | Path) -> tuple[Path, Entry | None]:
    """A bundled LM name (verified) or a path to an ARPA / KenLM binary."""
    entry = find_lm(str(name_or_path))
    if entry is not None:
        return _check(entry, LMLoadError), entry
    p = Path(name_or_path)
    if p.is_file():
        return p, None
    names = ", ".join(m.name for m in list_lms()) or "none bundled"
    raise LMLoadError(f"no LM named or at '{name_or_path}' (bundled: {names})")


def lm_unigrams(entry: Entry | None) -> Path | None:
    if entry is None or not entry.info.get("unigrams"):
        return None
    p = lm_dir() / entry.info["unigrams"]
    return p if p.is_file() else None


def _write_manifest(manifest: Path, data: dict) -> None:
    """Replace a manifest atomically (written beside it, then renamed)."""
    tmp = manifest.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    tmp.replace(manifest)


def refresh(paths: list[Path] | None = None) -> None:
    """Recompute sha256 and size of every manifest entry (after retraining)."""
    for manifest, key in (
        (models_dir() / "MANIFEST.json", "models"),
        (lm_dir() / "MANIFEST.json", "lms"),
    ):
        if not manifest.is_file():
            continue
        data = json.loads(manifest.read_text(encoding="utf-8"))
        for item in data.get(key, []):
            f = manifest.parent / item["file"]
            if f.is_file():
                item["sha256"] = sha256_file(f)
                item["size"] = f.stat().st_size
        _write_manifest(manifest, data)
        print(f"refreshed {manifest}", file=sys.stderr)


def install(
    name: str,
    src: Path,
    default_lm: str | None = None,
    alpha: float | None = None,
    beta: float | None = None,
    lm_sentence: bool | None = None,
    stretch: float | None = None,
    half: bool = False,
    average: list[Path] | tuple[Path, ...] = (),
    blank_penalty: float | None = None,
    beam: int | None = None,
    token_min_logp: float | None = None,
    beam_threshold: float | None = None,
) -> Path:
    """Copy a trained checkpoint to models/NAME/model.pt (decoding defaults
    optionally overridden, e.g. after tuning alpha and beta on a dev set; an
    image model's inference width `stretch` likewise, the training value kept
    as features.train_stretch; `half`: weights stored as float16, half the
    size, loaded back into float32; `average`: more checkpoints of the same
    network and features, whose weights are averaged with src's, as when
    fine-tuned runs from one start are combined; `beam`, `token_min_logp`
    and `beam_threshold`: the beam width and search pruning the model decodes
    with, the width unless the user gives --beam) and
    update its manifest entry: file, sha256, size, alphabet, default LM. A new
    name gets a minimal entry; its description is left to the model card."""
    import torch

    from ctcli.model import atomic_torch_save

    ck = torch.load(src, map_location="cpu", weights_only=True)
    if not isinstance(ck, dict) or "state_dict" not in ck or "kind" not in ck:
        raise ModelLoadError(f"{src}: not a ctcli checkpoint")
    if average:
        ck["state_dict"] = _averaged(ck, src, average)
    for key, value in (
        ("default_lm", default_lm),
        ("alpha", alpha),
        ("beta", beta),
        ("lm_sentence", lm_sentence),
        ("blank_penalty", blank_penalty),
        ("beam", beam),
    ):
        if value is not None:
            ck[key] = value
    for key, value in (("token_min_logp", token_min_logp), ("beam_threshold", beam_threshold)):
        if value is not None:  # search pruning (ctcli.decoder.PruningOptions)
            ck["pruning"] = {**ck.get("pruning", {}), key: float(value)}
    if stretch is not None:
        if ck["kind"] != "image":
            raise ModelLoadError(f"{src}: --stretch applies to image models only")
        feats = dict(ck.get("features", {}))
        feats.setdefault("train_stretch", float(feats.get("stretch", 1.0)))
        feats["stretch"] = float(stretch)
        ck["features"] = feats
    if half:
        ck["state_dict"] = {
            k: v.half() if v.is_floating_point() else v for k, v in ck["state_dict"].items()
        }
    dst = models_dir() / name / "model.pt"
    atomic_torch_save(ck, dst)
    manifest = models_dir() / "MANIFEST.json"
    data = (
        json.loads(manifest.read_text(encoding="utf-8")) if manifest.is_file() else {"models": []}
    )
    entry = next((m for m in data["models"] if m["name"] == name), None)
    if entry is None:
        entry = {"name": name, "default": False, "description": f"see models/{name}/README.md"}
        data["models"].append(entry)
    entry.update(
        kind=ck["kind"],
        file=f"{name}/model.pt",
        sha256=sha256_file(dst),
        size=dst.stat().st_size,
        alphabet="".join(c for i, c in enumerate(ck["alphabet"]) if i != ck.get("blank", 0)),
    )
    if ck.get("default_lm"):
        entry["default_lm"] = ck["default_lm"]
    _write_manifest(manifest, data)
    print(f"installed {src} as {dst} ({entry['size']:,} bytes)", file=sys.stderr)
    return dst


def _averaged(ck: dict, src: Path, others: list[Path] | tuple[Path, ...]) -> dict:
    """The mean of src's weights and those of `others` (float tensors; the
    rest taken from src). Every checkpoint must have src's network and features."""
    import torch

    sd = ck["state_dict"]
    sums = {k: v.double() for k, v in sd.items() if v.is_floating_point()}
    for o in others:
        oc = torch.load(o, map_location="cpu", weights_only=True)
        same = isinstance(oc, dict) and all(
            oc.get(k) == ck.get(k) for k in ("kind", "arch", "dims", "alphabet", "features")
        )
        osd = oc.get("state_dict", {}) if same else {}
        if (
            not same
            or osd.keys() != sd.keys()
            or any(osd[k].shape != v.shape for k, v in sd.items())
        ):
            raise ModelLoadError(f"{o}: not the same network and features as {src}")
        for k in sums:
            sums[k] += osd[k].double()
    n = 1 + len(others)
    return {k: (sums[k] / n).to(v.dtype) if k in sums else v for k, v in sd.items()}


def main(argv: list[str] | None = None) -> int:
    """`python -m ctcli.registry refresh` |
    `install NAME CHECKPOINT [--lm L] [--alpha A] [--beta B] [--blank-penalty P]
    [--beam N] [--token-min-logp X] [--beam-threshold T] [--lm-sentence yes|no]
    [--stretch F] [--half] [--average CK ...]`."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m ctcli.registry")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("refresh", help="recompute sha256 and size of every manifest entry")
    ins = sub.add_parser("install", help="bundle a trained checkpoint as models/NAME")
    ins.add_argument("name")
    ins.add_argument("checkpoint", type=Path)
    ins.add_argument("--lm", dest="default_lm")
    ins.add_argument("--alpha", type=float)
    ins.add_argument("--beta", type=float)
    ins.add_argument(
        "--blank-penalty",
        type=float,
        help="nats taken from the blank's log-probability in the beam search (tuned on a dev set)",
    )
    ins.add_argument("--beam", type=int, help="beam width the model decodes with by default")
    ins.add_argument(
        "--token-min-logp",
        type=float,
        help="search pruning: labels whose log-probability in a frame is below this are not tried",
    )
    ins.add_argument(
        "--beam-threshold",
        type=float,
        help="search pruning: prefixes more than this many nats below the best are dropped",
    )
    ins.add_argument(
        "--lm-sentence",
        choices=["yes", "no"],
        help="yes: outputs are whole sentences for the LM (<s> ... </s>); no: spans (text lines)",
    )
    ins.add_argument(
        "--stretch", type=float, help="image models: inference width factor (tuned on a dev set)"
    )
    ins.add_argument(
        "--half", action="store_true", help="store the weights as float16 (half the size)"
    )
    ins.add_argument(
        "--average",
        type=Path,
        nargs="+",
        default=[],
        metavar="CK",
        help="average the weights with these checkpoints (same network and features)",
    )
    a = ap.parse_args(argv)
    if a.cmd == "refresh":
        refresh()
    else:
        sent = None if a.lm_sentence is None else a.lm_sentence == "yes"
        install(
            a.name,
            a.checkpoint,
            a.default_lm,
            a.alpha,
            a.beta,
            sent,
            a.stretch,
            a.half,
            a.average,
            a.blank_penalty,
            a.beam,
            a.token_min_logp,
            a.beam_threshold,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
