"""CLI start-up: median wall time of `ctcli --help` (target < 0.5 s).

Also reports which heavy modules an import of the CLI pulls in (none should).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CTCLI = ROOT / ".venv" / "bin" / "ctcli"
RUNS = 15


def wall(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def main() -> None:
    exe = [str(CTCLI)] if CTCLI.exists() else [sys.executable, "-m", "ctcli"]
    rows = []
    for args in (["--help"], ["transcribe", "--help"], ["--version"]):
        wall(exe + args)  # warm the page cache
        times = [wall(exe + args) for _ in range(RUNS)]
        rows.append((" ".join(["ctcli", *args]), statistics.median(times), min(times), max(times)))
    print(f"{'command':<28} {'median s':>9} {'min s':>7} {'max s':>7}  target")
    for name, med, lo, hi in rows:
        print(
            f"{name:<28} {med:9.3f} {lo:7.3f} {hi:7.3f}  {'< 0.5 s ' + ('OK' if med < 0.5 else 'MISSED')}"
        )


if __name__ == "__main__":
    main()
