"""`ctcli train` and `ctcli eval`: training and evaluation as product features.

Registered on the main Typer app by ``ctcli.cli``; this module stays light
(torch, OpenCV and the generators are imported inside the commands).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

TRAIN = "Training"
DATA = "Data"


def register(app: typer.Typer) -> None:
    """Add the `train` and `eval` commands to the app."""
    from ctcli import console
    from ctcli.cli import handled

    @app.command(
        "train", help="Train a CTC line recogniser from a generator spec or a labelled manifest."
    )
    @handled
    def train_cmd(
        spec: Annotated[
            str, typer.Option(help="Generator spec (ctcli.synth): expr.", rich_help_panel=DATA)
        ] = "expr",
        manifest: Annotated[
            Path | None,
            typer.Option(
                help="Labelled manifest, one 'path<TAB>text' per line (instead of --spec).",
                rich_help_panel=DATA,
            ),
        ] = None,
        out: Annotated[Path, typer.Option(help="Inference checkpoint to write.")] = Path(
            "models/ocr-expr/model.pt"
        ),
        run_dir: Annotated[
            Path, typer.Option(help="Resume state, train.log, metrics.jsonl.")
        ] = Path("runs/ocr-expr"),
        data_dir: Annotated[
            Path,
            typer.Option(help="Preprocessed shards (generated if missing).", rich_help_panel=DATA),
        ] = Path("data/ocr-expr"),
        shards: Annotated[
            int, typer.Option(help="Training shards from the generator.", rich_help_panel=DATA)
        ] = 30,
        shard_size: Annotated[
            int, typer.Option(help="Images per shard.", rich_help_panel=DATA)
        ] = 10000,
        seed: Annotated[
            int, typer.Option(help="Torch and batch-order seed.", rich_help_panel=TRAIN)
        ] = 1,
        steps: Annotated[
            int, typer.Option(help="Optimiser steps in total.", rich_help_panel=TRAIN)
        ] = 20000,
        batch: Annotated[int, typer.Option(help="Images per step.", rich_help_panel=TRAIN)] = 32,
        lr: Annotated[
            float, typer.Option(help="Peak learning rate.", rich_help_panel=TRAIN)
        ] = 2e-3,
        threads: Annotated[int, typer.Option(help="Torch CPU threads.", rich_help_panel=TRAIN)] = 1,
        device: Annotated[
            str, typer.Option(help="auto | cpu | cuda[:N].", rich_help_panel=TRAIN)
        ] = "auto",
        amp: Annotated[
            str,
            typer.Option(
                help="Mixed precision: auto (bf16 where the CPU or GPU has it) | bf16 | off.",
                rich_help_panel=TRAIN,
            ),
        ] = "auto",
        resume: Annotated[
            bool,
            typer.Option(
                "--resume/--no-resume",
                help="Continue from RUN_DIR/state.pt if present.",
                rich_help_panel=TRAIN,
            ),
        ] = False,
        gen_only: Annotated[
            bool,
            typer.Option(
                "--gen-only", help="Only generate the shards, then exit.", rich_help_panel=DATA
            ),
        ] = False,
        init: Annotated[
            Path | None,
            typer.Option(
                help="Start a new run from this checkpoint's weights (same architecture).",
                rich_help_panel=TRAIN,
            ),
        ] = None,
        crop: Annotated[
            str,
            typer.Option(
                help="Line preprocessing for a new data dir: median | grow | local | fixed "
                "(an existing dir keeps its own).",
                rich_help_panel=DATA,
            ),
        ] = "median",
        stretch: Annotated[
            float,
            typer.Option(
                help="Width factor after resizing to the model height (1 keeps the aspect "
                "ratio; 1.5 gives squeezed text 50% more columns). Recorded in the data dir "
                "and the model.",
                rich_help_panel=DATA,
            ),
        ] = 1.0,
        mask: Annotated[
            bool,
            typer.Option(
                "--mask/--no-mask",
                help="Mask each image's padding in the CNN, as inference does "
                "(--no-mask: as the first bundled weights were trained).",
                rich_help_panel=TRAIN,
            ),
        ] = True,
        train_only: Annotated[
            bool,
            typer.Option(
                "--train-only",
                help="Generate nothing: train on the shards present and pick up new ones "
                "as a parallel --gen-only run writes them.",
                rich_help_panel=DATA,
            ),
        ] = False,
    ) -> int:
        from ctcli.errors import UsageError
        from ctcli.train import AMP_MODES, config_for, fit, generate_shards

        if manifest is None:
            from ctcli.synth import get_generator

            try:
                get_generator(spec)
            except ValueError as e:
                raise UsageError(f"--spec: {e}") from None
        if amp not in AMP_MODES:
            raise UsageError(f"--amp must be one of {', '.join(AMP_MODES)}, not {amp!r}")
        from ctcli.image import CROP_MODES

        if crop not in CROP_MODES:
            raise UsageError(f"--crop must be one of {', '.join(CROP_MODES)}, not {crop!r}")
        if not 0.25 <= stretch <= 4:
            raise UsageError(f"--stretch must be between 0.25 and 4, not {stretch}")
        if init is not None and not init.exists():
            raise UsageError(f"--init {init}: no such file")
        if gen_only and train_only:
            raise UsageError("--gen-only and --train-only exclude each other")
        cfg = config_for(
            spec,
            out=str(out),
            run_dir=str(run_dir),
            data_dir=str(data_dir),
            seed=seed,
            steps=steps,
            batch=batch,
            lr=lr,
            shards=shards,
            shard_size=shard_size,
            threads=threads,
            device=device,
            amp=amp,
            manifest=str(manifest) if manifest else None,
            init=str(init) if init else None,
            crop=crop,
            stretch=stretch,
            mask=mask,
        )
        if device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                from ctcli.errors import DeviceError

                raise DeviceError(f"--device {device}: no CUDA device available")
        run_dir.mkdir(parents=True, exist_ok=True)
        logf = open(run_dir / "train.log", "a", encoding="utf-8")

        def log(msg: str) -> None:
            line = f"{time.strftime('%H:%M:%S')} {msg}"
            logf.write(line + "\n")
            logf.flush()
            console.info(line)

        try:
            if manifest is None and not train_only:
                generate_shards(cfg, log=log)
            if not gen_only:
                fit(cfg, resume=resume, log=log)
        finally:
            logf.close()
        return 0

    @app.command("eval", help="Score a model: CER, sequence accuracy, confusions, lines/s.")
    @handled
    def eval_cmd(
        model: Annotated[
            str | None,
            typer.Option(
                "--model",
                "-m",
                help="Model NAME or PATH (default: the bundled audio model for an audio "
                "manifest, else ocr-expr).",
            ),
        ] = None,
        spec: Annotated[
            str | None,
            typer.Option(
                help="Generate test images with this spec (e.g. expr).", rich_help_panel=DATA
            ),
        ] = None,
        manifest: Annotated[
            Path | None,
            typer.Option(help="Labelled 'path<TAB>text' manifest.", rich_help_panel=DATA),
        ] = None,
        n: Annotated[
            int, typer.Option(help="Images to generate / read at most.", rich_help_panel=DATA)
        ] = 10000,
        seed: Annotated[
            int,
            typer.Option(
                help="Generator seed (training uses 1000-9999 and 7).", rich_help_panel=DATA
            ),
        ] = 100000,
        greedy: Annotated[
            bool, typer.Option("--greedy", help="Greedy decoding only (skip beam search).")
        ] = False,
        beam: Annotated[
            int | None, typer.Option(help="Beam width (default: the model's, else 32).")
        ] = None,
        lm: Annotated[
            str | None, typer.Option(help="LM NAME|PATH|none for the beam (default none).")
        ] = None,
        alpha: Annotated[
            float | None, typer.Option(help="LM weight (default: the model's).")
        ] = None,
        beta: Annotated[
            float | None, typer.Option(help="Word (or character) bonus (default: the model's).")
        ] = None,
        blank_penalty: Annotated[
            float | None,
            typer.Option(
                help="Nats off the blank's log-probability in the beam (default: the model's)."
            ),
        ] = None,
        threads: Annotated[int, typer.Option(help="Torch CPU threads.")] = 1,
        batch: Annotated[int, typer.Option(help="Images per forward batch.")] = 64,
        device: Annotated[str, typer.Option(help="cpu | cuda[:N].")] = "cpu",
        json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
        errors: Annotated[
            Path | None, typer.Option(help="Write misrecognised items (name, ref, hyp) as TSV.")
        ] = None,
    ) -> int:
        from ctcli.errors import UsageError
        from ctcli.evaluate import evaluate, format_report, manifest_items, spec_items

        if (spec is None) == (manifest is None):
            raise UsageError("give exactly one of --spec or --manifest")
        if manifest is not None and _is_audio_manifest(manifest):
            from ctcli.evaluate_speech import evaluate_speech, format_speech_report

            rep = evaluate_speech(
                model,
                manifest,
                greedy_only=greedy,
                beam=beam,
                lm=lm,
                alpha=alpha,
                beta=beta,
                blank_penalty=blank_penalty,
                threads=threads,
                limit=n,
            )
            print(json.dumps(rep, indent=2) if json_out else format_speech_report(rep))
            return 0
        if seed < 100000 and spec is not None:
            console.info(
                f"warning: seed {seed} is below 100000; training shards use seeds 1000-9999"
            )
        model = model or "ocr-expr"
        try:
            from ctcli.registry import resolve_model

            path = resolve_model(model)
        except ImportError:  # pragma: no cover
            path = Path(model)
        items = spec_items(spec, n, seed) if spec else manifest_items(manifest, n)
        errs: list = []
        rep = evaluate(
            path,
            items,
            modes=("greedy",) if greedy else ("greedy", "beam"),
            beam_width=beam,
            lm=lm,
            alpha=alpha,
            beta=beta,
            blank_penalty=blank_penalty,
            threads=threads,
            batch=batch,
            device=device,
            errors_out=errs,
        )
        if errors is not None:
            errors.write_text("".join(f"{a}\t{b}\t{c}\n" for a, b, c in errs), encoding="utf-8")
        print(json.dumps(rep.to_dict(), indent=2) if json_out else format_report(rep))
        return 0

    @app.command(
        "train-speech",
        help="Train the acoustic model on synthetic speech shards (ctcli.synth.speechdata). "
        "Options: ctcli train-speech --help.",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        add_help_option=False,
    )
    def train_speech_cmd(ctx: typer.Context) -> None:
        from ctcli.train_asr import main

        main(list(ctx.args), prog="ctcli train-speech")


def _is_audio_manifest(manifest: Path) -> bool:
    """Whether a manifest's first entry is an audio file (by content)."""
    from ctcli.inputs import InputItem, sniff_kind

    try:
        first = next(
            ln
            for ln in manifest.read_text(encoding="utf-8").splitlines()
            if ln.strip() and not ln.startswith("#")
        )
    except (OSError, UnicodeDecodeError, StopIteration):
        return False
    p = Path(first.split("\t")[0])
    p = p if p.is_absolute() else manifest.parent / p
    return sniff_kind(InputItem(str(p), p, Path(p.name)).header()) == "audio"
