"""The `ctcli` command line: a thin Typer layer over the library.

Options become a frozen `TranscribeOptions`; typed errors become exit codes
and one-line messages here and only here. Heavy modules (torch, cv2, librosa,
kenlm) are imported inside commands so `ctcli --help` stays fast.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from ctcli import __version__, console
from ctcli.errors import CtcliError, ExitCode, UsageError
from ctcli.options import DEFAULT_BATCH, DEFAULT_BEAM, DEFAULT_FORMAT, TranscribeOptions

app = typer.Typer(
    name="ctcli",
    help="Transcribe speech recordings and text-line images with CTC models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def handled(fn):
    """Map a command's outcome to exit codes: its int return value, typed
    errors as one line on stderr, Ctrl-C as 130, a closed stdout as quiet."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            code = fn(*args, **kwargs)
        except CtcliError as e:
            console.error(str(e))
            code = e.exit_code
        except KeyboardInterrupt:
            console.error("interrupted")
            code = ExitCode.INTERRUPTED
        except BrokenPipeError:
            console.silence_stdout()
            code = ExitCode.OK
        except typer.Exit:
            raise
        except Exception as e:  # a bug: one line; the traceback with CTCLI_DEBUG=1
            if os.environ.get("CTCLI_DEBUG"):
                raise
            console.error(
                f"internal error: {type(e).__name__}: {e} (CTCLI_DEBUG=1 shows a traceback)"
            )
            code = 70
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            console.silence_stdout()
        if code:
            raise typer.Exit(int(code))
        return 0

    return wrapper


IN = "Inputs"
OUT = "Output"
DEC = "Decoding"
RUN = "Model and device"


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"ctcli {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Transcribe speech recordings and text-line images with CTC models."""


@app.command()
@handled
def transcribe(
    paths: Annotated[
        list[str] | None,
        typer.Argument(help="Files, directories, or '-' for stdin.", show_default=False),
    ] = None,
    recursive: Annotated[
        bool,
        typer.Option("-r", "--recursive", help="Recurse into directories.", rich_help_panel=IN),
    ] = False,
    files_from: Annotated[
        str | None,
        typer.Option(
            "--files-from",
            metavar="FILE|-",
            help="Read input paths, one per line.",
            rich_help_panel=IN,
        ),
    ] = None,
    fmt: Annotated[
        str,
        typer.Option(
            "-f",
            "--format",
            metavar="FMT",
            envvar="CTCLI_FORMAT",
            help="txt|tsv|jsonl|json|srt|vtt (srt/vtt: audio only).",
            rich_help_panel=OUT,
        ),
    ] = DEFAULT_FORMAT,
    words: Annotated[
        bool,
        typer.Option(
            "--words",
            help="Per-word start/end/conf (seconds for audio, pixels for images).",
            rich_help_panel=OUT,
        ),
    ] = False,
    output_dir: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output-dir",
            metavar="DIR",
            help="Write one file per input, mirroring paths.",
            rich_help_panel=OUT,
        ),
    ] = None,
    skip_existing: Annotated[
        bool,
        typer.Option(
            "--skip-existing", help="With -o: skip inputs whose output exists.", rich_help_panel=OUT
        ),
    ] = False,
    beam: Annotated[
        int | None,
        typer.Option(
            "--beam",
            min=1,
            envvar="CTCLI_BEAM",
            help=f"Beam width (default: the model's, else {DEFAULT_BEAM}).",
            rich_help_panel=DEC,
        ),
    ] = None,
    lm: Annotated[
        str | None,
        typer.Option(
            "--lm",
            metavar="NAME|PATH|none",
            envvar="CTCLI_LM",
            help="Language model (default: the model's).",
            rich_help_panel=DEC,
        ),
    ] = None,
    alpha: Annotated[
        float | None, typer.Option("--alpha", help="LM weight.", rich_help_panel=DEC)
    ] = None,
    beta: Annotated[
        float | None, typer.Option("--beta", help="Word insertion bonus.", rich_help_panel=DEC)
    ] = None,
    blank_penalty: Annotated[
        float | None,
        typer.Option(
            "--blank-penalty",
            help="Nats taken from the blank's log-probability in the beam search "
            "(> 0: fewer dropped letters and words; default: the model's).",
            rich_help_panel=DEC,
        ),
    ] = None,
    hotword: Annotated[
        list[str] | None,
        typer.Option(
            "--hotword",
            metavar="WORD[:BOOST]",
            help="Boost a word or phrase (repeatable).",
            rich_help_panel=DEC,
        ),
    ] = None,
    n_best: Annotated[
        int,
        typer.Option(
            "--n-best",
            min=1,
            help="Hypotheses per input (shown in jsonl/json).",
            rich_help_panel=DEC,
        ),
    ] = 1,
    greedy: Annotated[
        bool,
        typer.Option("--greedy", help="Best-path decoding: no beam, no LM.", rich_help_panel=DEC),
    ] = False,
    model: Annotated[
        str | None,
        typer.Option(
            "-m",
            "--model",
            metavar="NAME|PATH",
            envvar="CTCLI_MODEL",
            help="Model (default: bundled, per input kind).",
            rich_help_panel=RUN,
        ),
    ] = None,
    device: Annotated[
        str,
        typer.Option(
            "--device",
            metavar="auto|cpu|cuda[:N]",
            envvar="CTCLI_DEVICE",
            help="Compute device.",
            rich_help_panel=RUN,
        ),
    ] = "auto",
    jobs: Annotated[
        int,
        typer.Option(
            "-j",
            "--jobs",
            min=0,
            envvar="CTCLI_JOBS",
            help="CPU threads/processes (0: library defaults).",
            rich_help_panel=RUN,
        ),
    ] = 0,
    batch_size: Annotated[
        int,
        typer.Option("--batch-size", min=1, help="Inputs per model batch.", rich_help_panel=RUN),
    ] = DEFAULT_BATCH,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Only errors on stderr.")] = False,
    verbose: Annotated[
        bool, typer.Option("-v", "--verbose", help="More detail on stderr.")
    ] = False,
) -> int:
    """Transcribe audio and image files; results go to stdout, one per input."""
    from ctcli.inputs import collect, detect_kind
    from ctcli.writers import AUDIO_ONLY, FORMATS

    console.set_verbosity(-1 if quiet else (1 if verbose else 0))
    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise UsageError(f"unknown format '{fmt}' (choose from {', '.join(FORMATS)})")
    if skip_existing and output_dir is None:
        raise UsageError("--skip-existing needs -o DIR")
    if not paths and files_from is None:
        raise UsageError("no inputs given (paths, '-' or --files-from)")
    hotwords = ()
    if hotword:
        from ctcli.decoder import DEFAULT_HOTWORD_BOOST
        from ctcli.pipeline import parse_hotword

        hotwords = tuple(parse_hotword(h, DEFAULT_HOTWORD_BOOST) for h in hotword)
    opts = TranscribeOptions(
        model=model,
        lm=lm,
        alpha=alpha,
        beta=beta,
        blank_penalty=blank_penalty,
        beam=beam,
        greedy=greedy,
        n_best=n_best,
        hotwords=hotwords,
        words=words,
        fmt=fmt,
        device=device,
        jobs=jobs,
        batch_size=batch_size,
        output_dir=output_dir,
        skip_existing=skip_existing,
    )
    items = collect(paths or [], recursive=recursive, files_from=files_from)
    if fmt in AUDIO_ONLY:
        for it in items:
            try:
                kind = detect_kind(it)
            except CtcliError:
                continue  # reported per item later
            if kind != "audio":
                raise UsageError(f"-f {fmt} is for audio only; {it.display} is an {kind}")

    from ctcli.pipeline import Pipeline, render_single, write_atomic
    from ctcli.writers import make_writer

    pipeline = Pipeline(opts)
    if device != "cpu":
        pipeline.device  # noqa: B018 - fail fast (exit 3) on an unusable --device
    sink = console.StdoutSink()
    writer = make_writer(fmt, sink, words=words, nbest=n_best > 1) if output_dir is None else None

    def emit(result, item) -> None:
        if not result.ok:
            console.error(f"{result.path}: {result.error}")
        if writer is not None:
            writer.write(result)
            sink.flush()
        elif result.ok:
            out = pipeline.output_path(item)
            write_atomic(out, render_single(result, fmt, words, n_best > 1))
            console.info(f"{item.display} -> {out}")

    if writer is not None:
        writer.begin()
    failed = pipeline.run(items, emit)
    if writer is not None:
        writer.end()
        sink.flush()
    return ExitCode.INPUT_FAILED if failed else ExitCode.OK


@app.command()
@handled
def models(
    fmt: Annotated[
        str, typer.Option("-f", "--format", metavar="table|json", help="table or json.")
    ] = "table",
) -> int:
    """List bundled models and LMs, verifying each checksum (mismatch: exit 3)."""
    from ctcli import registry

    rows = []
    for e in registry.list_models():
        rows.append(
            {
                "name": e.name,
                "type": "model",
                "kind": e.kind,
                "size": e.size,
                "alphabet": e.info.get("alphabet", ""),
                "default": bool(e.info.get("default")),
                "default_lm": e.info.get("default_lm"),
                "sha256": e.sha256,
                "status": e.verify(),
                "file": str(e.path),
            }
        )
    for e in registry.list_lms():
        rows.append(
            {
                "name": e.name,
                "type": "lm",
                "kind": e.info.get("unit", "word") + "-lm",
                "size": e.size,
                "order": e.info.get("order"),
                "vocab_size": e.info.get("vocab_size"),
                "sha256": e.sha256,
                "status": e.verify(),
                "file": str(e.path),
            }
        )
    sink = console.StdoutSink()
    if fmt == "json":
        sink.write(json.dumps(rows, indent=2) + "\n")
    elif fmt == "table":
        sink.write(f"{'NAME':<14} {'TYPE':<6} {'KIND':<10} {'SIZE':>9}  {'STATUS':<9} DETAILS\n")
        for r in rows:
            size = f"{(r['size'] or 0) / 1e6:.1f}MB"
            if r["type"] == "model":
                details = (
                    f"alphabet={r['alphabet']!r}"
                    + (" default" if r["default"] else "")
                    + (f" lm={r['default_lm']}" if r["default_lm"] else "")
                )
            else:
                details = f"order={r['order']} vocab={r['vocab_size']}"
            sink.write(
                f"{r['name']:<14} {r['type']:<6} {r['kind']:<10} {size:>9}  {r['status']:<9} {details}\n"
            )
    else:
        raise UsageError(f"unknown format '{fmt}' (table or json)")
    sink.flush()
    bad = [r for r in rows if r["status"] != "ok"]
    for r in bad:
        console.error(f"{r['name']}: {r['file']} is {r['status']}")
    return ExitCode.LOAD_FAILED if bad else ExitCode.OK


def _register_optional() -> None:
    """Sub-commands that live in their own modules."""
    import importlib

    for mod, how in (
        ("ctcli.cli_lm", "lm"),
        ("ctcli.cli_train", "register"),
        ("ctcli.cli_listen", "register"),
    ):
        try:
            m = importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name == mod:
                continue
            raise
        if how == "lm":
            app.add_typer(m.app, name="lm", help="Build and inspect n-gram language models.")
        else:
            m.register(app)


_register_optional()


def main(argv: list[str] | None = None) -> None:
    """Entry point (console script and `python -m ctcli`)."""
    app(args=argv, prog_name="ctcli")
