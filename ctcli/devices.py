"""Device selection: auto | cpu | cuda | cuda:N.

Explicitly asking for CUDA without a usable GPU is an error (exit 3), never a
silent fallback. torch is imported lazily.
"""

from __future__ import annotations

import re

from ctcli.errors import DeviceError, UsageError

_SPEC = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def resolve_device(spec: str) -> str:
    """Turn a --device value into a torch device string."""
    spec = (spec or "auto").strip().lower()
    if not _SPEC.match(spec):
        raise UsageError(f"invalid --device '{spec}': use auto, cpu, cuda or cuda:N")
    if spec == "cpu":
        return "cpu"
    import torch

    available = torch.cuda.is_available()
    if spec == "auto":
        return "cuda" if available else "cpu"
    if not available:
        raise DeviceError(f"--device {spec}: CUDA is not available on this machine")
    index = int(spec.split(":")[1]) if ":" in spec else 0
    count = torch.cuda.device_count()
    if index >= count:
        raise DeviceError(f"--device {spec}: only {count} CUDA device(s) present")
    return f"cuda:{index}"
