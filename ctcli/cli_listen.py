"""`ctcli listen`: live transcription from the microphone, a file or stdin.

Finished utterances go to stdout, one line each (txt or jsonl); partial
hypotheses are redrawn in place on stderr, only when stderr is a terminal.
Ctrl-C finishes the current utterance, prints it and exits (130).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated

import typer

from ctcli import console
from ctcli.errors import ExitCode, UsageError
from ctcli.options import DEFAULT_BEAM, DEFAULT_MIN_SILENCE_S


def register(app: typer.Typer) -> None:
    from ctcli.cli import handled

    @app.command()
    @handled
    def listen(
        from_: Annotated[
            str | None,
            typer.Option(
                "--from",
                metavar="FILE|-",
                help="Stream a file (or '-': WAV/raw s16le on stdin) instead of the microphone.",
            ),
        ] = None,
        realtime: Annotated[
            bool,
            typer.Option(
                "--realtime/--no-realtime",
                help="With --from: pace input in real time (default: as fast as possible).",
            ),
        ] = False,
        list_devices: Annotated[
            bool, typer.Option("--list-devices", help="List audio input devices and exit.")
        ] = False,
        input_device: Annotated[
            str | None, typer.Option("--input-device", metavar="ID|NAME", help="Microphone to use.")
        ] = None,
        sample_rate: Annotated[
            int,
            typer.Option("--sample-rate", min=8000, help="Capture rate (and rate of raw stdin)."),
        ] = 16000,
        vad: Annotated[
            bool, typer.Option("--vad/--no-vad", help="Split utterances at pauses (energy VAD).")
        ] = True,
        vad_threshold: Annotated[
            float, typer.Option("--vad-threshold", help="Speech: dB above the noise floor.")
        ] = 12.0,
        min_silence: Annotated[
            float, typer.Option("--min-silence", help="Seconds of silence that end an utterance.")
        ] = DEFAULT_MIN_SILENCE_S,
        fmt: Annotated[
            str,
            typer.Option(
                "-f", "--format", metavar="txt|jsonl", help="Output for finished utterances."
            ),
        ] = "txt",
        words: Annotated[bool, typer.Option("--words", help="Word timings in jsonl.")] = False,
        model: Annotated[
            str | None,
            typer.Option(
                "-m", "--model", metavar="NAME|PATH", envvar="CTCLI_MODEL", help="Acoustic model."
            ),
        ] = None,
        lm: Annotated[
            str | None,
            typer.Option(
                "--lm", metavar="NAME|PATH|none", envvar="CTCLI_LM", help="Language model."
            ),
        ] = None,
        alpha: Annotated[float | None, typer.Option("--alpha", help="LM weight.")] = None,
        beta: Annotated[float | None, typer.Option("--beta", help="Word bonus.")] = None,
        blank_penalty: Annotated[
            float | None,
            typer.Option(
                "--blank-penalty",
                help="Nats off the blank's log-probability (default: the model's).",
            ),
        ] = None,
        beam: Annotated[
            int | None,
            typer.Option(
                "--beam", min=1, help=f"Beam width (default: the model's, else {DEFAULT_BEAM})."
            ),
        ] = None,
        device: Annotated[
            str, typer.Option("--device", metavar="auto|cpu|cuda[:N]", help="Compute device.")
        ] = "auto",
        quiet: Annotated[
            bool, typer.Option("-q", "--quiet", help="Only errors on stderr.")
        ] = False,
        verbose: Annotated[
            bool, typer.Option("-v", "--verbose", help="Status messages on stderr.")
        ] = False,
    ) -> int:
        """Transcribe live audio, one line per finished utterance."""
        from ctcli import stream

        console.set_verbosity(-1 if quiet else (1 if verbose else 0))
        if list_devices:
            for d in stream.list_input_devices():
                sys.stdout.write(
                    f"{d['index']}\t{d['name']}\t{int(d.get('default_samplerate', 0))} Hz\t{d['max_input_channels']} ch\n"
                )
            return ExitCode.OK
        if fmt not in ("txt", "jsonl"):
            raise UsageError(f"unknown format '{fmt}' (txt or jsonl)")
        if from_ is None:
            dev = int(input_device) if input_device and input_device.isdigit() else input_device
            stream.list_input_devices()  # exit 3 with one line when there is no microphone
            blocks = stream.microphone_blocks(dev, sample_rate)
        elif from_ == "-":
            blocks = stream.stdin_blocks(sys.stdin.buffer, raw_rate=sample_rate)
        else:
            blocks = stream.file_blocks(from_)
        if from_ is not None and realtime:
            blocks = stream.realtime(blocks)

        from ctcli.options import TranscribeOptions
        from ctcli.pipeline import Pipeline

        runner = Pipeline(
            TranscribeOptions(
                model=model,
                lm=lm,
                alpha=alpha,
                beta=beta,
                blank_penalty=blank_penalty,
                beam=beam,
                device=device,
            )
        ).runner_for("audio")
        tty = console.stderr_is_tty() and not quiet
        t_start = time.monotonic()
        sink = console.StdoutSink()

        def on_result(r: stream.StreamResult) -> None:
            if not r.final:
                if tty:
                    stream.print_partial(r)
                return
            if tty:
                sys.stderr.write("\r\033[K")
            if fmt == "txt":
                sink.write(r.text + "\n")
            else:
                rec = {
                    "start": round(r.start, 3),
                    "end": round(r.end, 3),
                    "text": r.text,
                    "conf": round(r.conf, 4),
                    "wall": round(r.wall - t_start, 3),
                }
                if words:
                    rec["words"] = [w.to_dict() for w in r.words]
                sink.write(json.dumps(rec) + "\n")
            sink.flush()

        stream.warm_up(runner.model, runner.decoder)  # JIT and first-call costs before audio flows
        if tty:
            sys.stderr.write("ctcli: listening (Ctrl-C to stop)\n")
        console.info(f"listening on {from_ or 'the microphone'}")
        rec = stream.StreamRecognizer(
            runner.model,
            runner.decoder,
            stream.VadConfig(enabled=vad, threshold_db=vad_threshold, min_silence_s=min_silence),
            on_result,
        )
        try:
            stream.run(blocks, rec)
        except KeyboardInterrupt:
            console.error("interrupted")
            return ExitCode.INTERRUPTED
        return ExitCode.OK
