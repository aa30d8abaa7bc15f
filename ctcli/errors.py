"""Exit codes and the typed errors that carry them.

Library code raises these; only `ctcli.cli` turns them into exit codes and
one-line messages on stderr.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    INPUT_FAILED = 1  # some inputs failed; the rest of the batch went on
    USAGE = 2  # bad command line
    LOAD_FAILED = 3  # model, LM or device could not be loaded
    NO_INPUTS = 4  # no input matched
    INTERRUPTED = 130  # Ctrl-C


class CtcliError(Exception):
    """Base class: an expected fault with a one-line message."""

    exit_code: ExitCode = ExitCode.INPUT_FAILED


class InputError(CtcliError):
    """One input could not be read or decoded (corrupt, empty, wrong type)."""

    exit_code = ExitCode.INPUT_FAILED


class UsageError(CtcliError):
    exit_code = ExitCode.USAGE


class LoadError(CtcliError):
    """A model, LM or device could not be loaded or verified."""

    exit_code = ExitCode.LOAD_FAILED


class ModelLoadError(LoadError):
    pass


class LMLoadError(LoadError):
    pass


class DeviceError(LoadError):
    pass


class NoInputsError(CtcliError):
    exit_code = ExitCode.NO_INPUTS


class DecoderInputError(CtcliError, ValueError):
    """Malformed decoder input: NaN, wrong shape, T = 0, probabilities instead
    of log-probabilities, vocabulary/alphabet mismatch."""

    exit_code = ExitCode.INPUT_FAILED
