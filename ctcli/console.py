"""Where text goes: results to stdout (plain, flushed per item), everything
else to stderr through rich, with colour and progress only on a terminal."""

from __future__ import annotations

import os
import sys
from typing import TextIO

_VERBOSITY = 0  # -1 quiet, 0 normal, 1 verbose
_err_console = None


def set_verbosity(v: int) -> None:
    global _VERBOSITY
    _VERBOSITY = v


def stderr_is_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def err_console():
    """A rich Console on stderr; no colour when piped or NO_COLOR is set."""
    global _err_console
    if _err_console is None or _err_console.file is not sys.stderr:
        from rich.console import Console

        tty = stderr_is_tty()
        _err_console = Console(
            file=sys.stderr,
            no_color=bool(os.environ.get("NO_COLOR")) or not tty,
            force_terminal=None if tty else False,
            highlight=False,
            soft_wrap=True,
        )
    return _err_console


def _plain(msg: str) -> None:
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def error(msg: str) -> None:
    """One line on stderr: 'ctcli: error: ...'. Never markup-interpreted."""
    _plain(f"ctcli: error: {msg}")


def warn(msg: str) -> None:
    if _VERBOSITY >= 0:
        _plain(f"ctcli: warning: {msg}")


def info(msg: str) -> None:
    if _VERBOSITY >= 1:
        _plain(f"ctcli: {msg}")


class StdoutSink:
    """Plain text to stdout, flushed per result. A closed pipe (`| head -1`)
    ends the run quietly."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stdout
        self.closed = False

    def write(self, s: str) -> int:
        if self.closed:
            return 0
        try:
            self.stream.write(s)
        except BrokenPipeError:
            self._on_broken_pipe()
        return len(s)

    def flush(self) -> None:
        if self.closed:
            return
        try:
            self.stream.flush()
        except BrokenPipeError:
            self._on_broken_pipe()

    def _on_broken_pipe(self) -> None:
        self.closed = True
        silence_stdout()
        raise BrokenPipeError


def silence_stdout() -> None:
    """Point fd 1 at /dev/null so that the interpreter's final flush after a
    closed pipe (`| head -1`) is silent."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


class Progress:
    """A rich progress bar on a terminal stderr; nothing otherwise."""

    def __init__(self, total: int, enabled: bool = True):
        self._bar = None
        if (
            enabled
            and total > 1
            and _VERBOSITY >= 0
            and stderr_is_tty()
            and not os.environ.get("CI")
        ):
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TimeRemainingColumn,
            )
            from rich.progress import (
                Progress as RichProgress,
            )

            self._bar = RichProgress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=err_console(),
                transient=True,
            )
            self._task = self._bar.add_task("transcribing", total=total)
            self._bar.start()

    def advance(self) -> None:
        if self._bar is not None:
            self._bar.advance(self._task)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
