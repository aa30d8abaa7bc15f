"""The run loop: inputs -> features -> model -> decoder -> writers.

One model load per kind per run, batches through the model, decoding on CPU,
results emitted in input order and flushed as each completes; one bad input
never stops the others.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ctcli import console, registry
from ctcli.errors import CtcliError, InputError, ModelLoadError
from ctcli.inputs import InputItem, detect_kind
from ctcli.options import EXPR_RERANK_NBEST, TranscribeOptions
from ctcli.results import NBest, Result, Word, tidy_text
from ctcli.writers import EXTENSIONS, make_writer


@dataclass
class Runner:
    """A loaded model with its decoder."""

    name: str
    model: object  # ctcli.model.LoadedModel
    decoder: object | None  # ctcli.decoder.Decoder (None with --greedy)
    rerank: str | None = None

    @property
    def kind(self) -> str:
        return self.model.kind


@dataclass
class _Prepared:
    item: InputItem
    index: int
    kind: str | None = None
    arrays: list = field(default_factory=list)  # model inputs (one per image line)
    places: list = field(default_factory=list)  # per array: (offset, scale) to map frames back
    duration: float | None = None
    result: Result | None = None  # set when finished (error or skipped)
    skipped: bool = False
    long_audio: bool = False  # streamed through VAD segments instead of one forward pass
    runner: Runner | None = None  # the model that reads this input
    gray: np.ndarray | None = None  # decoded image, kept while routing may re-read it
    decoded: list = field(default_factory=list)  # decoder output per array


def parse_hotword(spec: str, default_boost: float) -> tuple[str, float]:
    """'WORD' or 'WORD:BOOST' (the phrase may contain spaces)."""
    phrase, sep, boost = spec.rpartition(":")
    if sep and phrase.strip():
        try:
            return phrase.strip(), float(boost)
        except ValueError:
            pass
    return spec.strip(), default_boost


class Pipeline:
    def __init__(self, opts: TranscribeOptions):
        self.opts = opts
        self._runners: dict[str, Runner] = {}
        self._router: tuple[Runner, Runner] | None = ...  # type: ignore[assignment]  # see image_router
        self._device: str | None = None

    # ---------------------------------------------------------------- models
    @property
    def device(self) -> str:
        if self._device is None:
            from ctcli.devices import resolve_device

            self._device = resolve_device(self.opts.device)
        return self._device

    def runner_for(self, kind: str) -> Runner:
        key = self.opts.model or kind
        if key not in self._runners:
            self._runners[key] = self._load(kind)
        runner = self._runners[key]
        if runner.kind != kind:
            raise InputError(f"model '{runner.name}' reads {runner.kind} input, this is {kind}")
        return runner

    def _named(self, name: str) -> Runner:
        """A bundled model by name (image routing), loaded once."""
        key = f"name:{name}"
        if key not in self._runners:
            self._runners[key] = self._load("image", name)
        return self._runners[key]

    def image_router(self) -> tuple[Runner, Runner] | None:
        """(specialist, general) when no --model is given and both a
        self-checking image model (the arithmetic captcha reader) and a
        general one are bundled: each image goes to the specialist first and
        stays there only when its reading checks (see ``_checks``)."""
        if self.opts.model:
            return None
        if self._router is ...:  # not looked up yet
            self._router = None
            models = [m for m in registry.list_models() if m.kind == "image"]
            special = [m for m in models if m.info.get("route") == "expr-check"]
            general = [m for m in models if m.info.get("route") != "expr-check"]
            if special and general:
                general.sort(key=lambda m: not m.info.get("default"))
                self._router = (self._named(special[0].name), self._named(general[0].name))
        return self._router

    def _load(self, kind: str, name: str | None = None) -> Runner:
        from ctcli.model import load_model

        if name is not None:
            path = registry.resolve_model(name)
        elif self.opts.model:
            path = registry.resolve_model(self.opts.model)
            name = self.opts.model if registry.find_model(self.opts.model) else path.stem
        else:
            entry = registry.default_model(kind)
            if entry is None:
                raise ModelLoadError(f"no bundled {kind} model; pass --model NAME|PATH")
            path = registry.resolve_model(entry.name)
            name = entry.name
        if self.opts.jobs > 0:
            import torch

            torch.set_num_threads(self.opts.jobs)
        model = load_model(path, device=self.device)
        console.info(f"loaded model {name} ({model.kind}) on {self.device}")
        decoder = None if self.opts.greedy else self._build_decoder(model)
        return Runner(name, model, decoder, rerank=model.meta.get("rerank"))

    def _build_decoder(self, model) -> object:
        from ctcli.decoder import blank_penalty_for, build_decoder, search_for

        o = self.opts
        meta = model.meta
        lm_spec = o.lm if o.lm is not None else meta.get("default_lm")
        lm_path = unigrams = None
        unit = "word" if " " in model.labels else "char"
        if lm_spec and lm_spec.lower() != "none":
            try:
                lm_path, entry = registry.resolve_lm(lm_spec)
            except CtcliError:
                if o.lm is not None:
                    raise
                console.warn(f"default LM '{lm_spec}' is not available; decoding without an LM")
                entry = None
            if entry is not None:
                unit = entry.info.get("unit", unit)
                unigrams = registry.lm_unigrams(entry)
        n_best = o.n_best
        if meta.get("rerank") == "expr":
            n_best = max(n_best, EXPR_RERANK_NBEST)
        alpha = o.alpha if o.alpha is not None else meta.get("alpha")
        beta = o.beta if o.beta is not None else meta.get("beta")
        return build_decoder(
            list(model.labels),
            blank=model.blank,
            lm=str(lm_path) if lm_path else None,
            alpha=alpha,
            beta=beta,
            unigrams=[w for w in Path(unigrams).read_text().split()] if unigrams else None,
            hotwords=list(o.hotwords) or None,
            lm_unit=unit,
            n_best=n_best,
            lm_sentence=bool(meta.get("lm_sentence", True)),
            blank_penalty=blank_penalty_for(
                o.blank_penalty, meta.get("blank_penalty"), lm_path is not None
            ),
            **search_for(o.beam, meta),  # the model's tuned beam and pruning; --beam wins
        )

    # ---------------------------------------------------------------- outputs
    def output_path(self, item: InputItem) -> Path | None:
        if self.opts.output_dir is None:
            return None
        return self.opts.output_dir / item.rel.with_suffix(EXTENSIONS[self.opts.fmt])

    # ---------------------------------------------------------------- run
    def run(self, items: list[InputItem], emit) -> int:
        """Process items in windows of batch_size; call emit(result, item) in
        input order. Returns the number of failed inputs."""
        failed = 0
        bs = max(1, self.opts.batch_size)
        progress = console.Progress(len(items))
        try:
            for start in range(0, len(items), bs):
                window = [
                    _Prepared(it, start + i) for i, it in enumerate(items[start : start + bs])
                ]
                for p in window:
                    self._prepare(p)
                self._infer(window)
                for p in window:
                    if p.skipped:
                        console.info(f"{p.item.display}: output exists, skipped")
                    else:
                        assert p.result is not None
                        if not p.result.ok:
                            failed += 1
                        emit(p.result, p.item)
                    progress.advance()
        finally:
            progress.close()
        return failed

    def _prepare(self, p: _Prepared) -> None:
        item = p.item
        out = self.output_path(item)
        if self.opts.skip_existing and out is not None and out.exists():
            p.skipped = True
            return
        try:
            if item.error:
                raise InputError(item.error)
            if item.path is not None and _audio_seconds(item.path) > LONG_AUDIO_S:
                p.kind = "audio"
                self.runner_for("audio")
                p.long_audio = True
                return
            data = item.read()
            p.kind = detect_kind(item, data[:64])
            router = self.image_router() if p.kind == "image" else None
            runner = router[0] if router else self.runner_for(p.kind)
            if p.kind == "image":
                from ctcli.image import decode_image

                p.gray = decode_image(data)
                self._image_lines(p, runner)
                if router is None:
                    p.gray = None
            else:
                from ctcli.audio import decode_audio
                from ctcli.stream import span_logmel

                feats_cfg = runner.model.meta.get("features", {})
                sr = int(feats_cfg.get("sample_rate", 16000))
                wave = decode_audio(data, sr)
                p.duration = wave.size / float(sr)
                a, x = span_logmel(wave, feats_cfg)  # as the streaming and long-audio paths cut it
                p.arrays = [x]
                p.places = [(a / float(sr), 1.0)]
                p.runner = runner
        except CtcliError as e:
            if not isinstance(e, InputError):
                raise
            p.result = Result(item.display, kind=p.kind, error=str(e))
        except (ValueError, RuntimeError, OSError, MemoryError) as e:
            p.result = Result(
                item.display, kind=p.kind, error=f"cannot process input: {type(e).__name__}: {e}"
            )

    def _image_lines(self, p: _Prepared, runner: Runner) -> None:
        """Cut p.gray into the runner's input lines (empty image: empty result)."""
        from ctcli.image import load_lines

        lines = load_lines(p.gray, **runner.model.line_options)
        p.runner = runner
        p.arrays = [ln.array for ln in lines]
        p.places = [(ln.x0, ln.scale) for ln in lines]
        if not lines:
            p.result = Result(
                p.item.display, text="", score=0.0, conf=1.0, kind="image", model=runner.name
            )

    def _long_audio(self, p: _Prepared) -> Result:
        """Audio of any length in bounded memory: VAD segments streamed
        through the model and decoder; timestamps in file time."""
        from ctcli import stream

        runner = self.runner_for("audio")
        if runner.decoder is None:
            from ctcli.decoder import build_decoder

            runner.decoder = build_decoder(
                list(runner.model.labels), blank=runner.model.blank, beam_width=1
            )
        finals: list = []
        rec = stream.StreamRecognizer(
            runner.model,
            runner.decoder,
            stream.VadConfig(),
            lambda r: r.final and finals.append(r),
            partial_every=1 << 30,
        )  # no partials offline
        total = 0
        # chunk-sized network steps gain nothing from torch's thread pool, whose
        # waiting threads slow the search beside them (a 5-minute file: 22.5 s
        # with the default two threads, 10.0 s with one): one thread unless
        # --jobs asks for more
        with _torch_threads(self.opts.jobs or 1):
            for block in stream.file_blocks(str(p.item.path), block_s=LONG_AUDIO_BLOCK_S):
                total += block.size
                rec.push(block)
            rec.close()
        words = [w for r in finals for w in r.words]
        return Result(
            p.item.display,
            text=" ".join(r.text for r in finals),
            score=None,
            conf=min((r.conf for r in finals), default=1.0),
            words=words,
            segments=[(r.start, r.end, r.text) for r in finals],
            kind="audio",
            duration=total / 16000.0,
            model=runner.name,
        )

    def _infer(self, window: list[_Prepared]) -> None:
        for p in window:
            if p.long_audio and p.result is None:
                try:
                    p.result = self._long_audio(p)
                except InputError as e:
                    p.result = Result(p.item.display, kind="audio", error=str(e))
        todo = [p for p in window if p.result is None and not p.skipped]
        by_runner: dict[int, list[_Prepared]] = {}
        for p in todo:
            by_runner.setdefault(id(p.runner), []).append(p)
        for group in by_runner.values():
            self._run_group(group[0].runner, group)
        router = self.image_router() if any(p.gray is not None for p in todo) else None
        if router is not None:
            special, general = router
            stretch = special.model.line_options["stretch"]
            rerouted = []
            for p in todo:
                if (
                    p.runner is special
                    and p.gray is not None
                    and not _checks(p.decoded, p.arrays, stretch)
                ):
                    p.result = None
                    self._image_lines(p, general)
                    if p.result is None:
                        rerouted.append(p)
            if rerouted:
                self._run_group(general, rerouted)
            for p in todo:
                p.gray = None

    def _run_group(self, runner: Runner, group: list[_Prepared]) -> None:
        """One batched forward pass and decode for inputs read by the same model."""
        arrays = [a for p in group for a in p.arrays]
        log_probs = runner.model.log_probs(arrays)
        decoded = self._decode(runner, log_probs)
        k = 0
        for p in group:
            n = len(p.arrays)
            p.decoded = decoded[k : k + n]
            p.result = self._assemble(runner, p, p.decoded, log_probs[k : k + n])
            k += n

    def _decode(self, runner: Runner, log_probs: list[np.ndarray]) -> list:
        if runner.decoder is None:
            from ctcli.decoder import greedy_decode

            return [
                greedy_decode(lp, list(runner.model.labels), runner.model.blank) for lp in log_probs
            ]
        if len(log_probs) > 1 and self.opts.jobs > 1:
            return runner.decoder.decode_batch(log_probs, jobs=self.opts.jobs)
        return [runner.decoder.decode(lp) for lp in log_probs]

    def _assemble(self, runner: Runner, p: _Prepared, decoded: list, log_probs: list) -> Result:
        stride = float(runner.model.frame_stride)
        texts, words, nbest = [], [], []
        score = 0.0
        confs = []
        for r, lp, (offset, scale) in zip(decoded, log_probs, p.places, strict=True):
            text = tidy_text(r.text)
            line_words = [
                Word(
                    w.text,
                    offset + w.start * stride / scale,
                    offset + w.end * stride / scale,
                    float(w.conf),
                )
                for w in r.words
            ]
            hyps = list(getattr(r, "nbest", []) or [])
            if runner.rerank == "expr":
                text, line_words = _rerank_expr(text, hyps, line_words, lp, runner.model)
            texts.append(text)
            words.extend(line_words)
            nbest.extend(
                NBest(h.text, h.score, h.acoustic_score, h.lm_score)
                for h in hyps[: self.opts.n_best]
            )
            # the score of the hypothesis actually chosen (the re-ranker may pick another n-best entry)
            score += next((float(h.score) for h in hyps if h.text == text), float(r.score))
            confs.append(float(r.conf))
        return Result(
            p.item.display,
            text="\n".join(texts),
            score=score,
            conf=min(confs) if confs else 1.0,
            words=words,
            nbest=nbest if self.opts.n_best > 1 else [],
            lines=texts,
            kind=p.kind,
            duration=p.duration,
            model=runner.name,
        )


@contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """torch's intra-op threads set to n for the block, then put back."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


LONG_AUDIO_S = 30.0  # longer audio files are segmented by VAD and streamed (bounded memory)
LONG_AUDIO_BLOCK_S = 0.5  # read size for long files (endpoint resolution)


def _audio_seconds(path: Path) -> float:
    """Duration from the header (0 when unknown or not audio)."""
    try:
        import soundfile as sf

        info = sf.info(str(path))
        return info.frames / float(info.samplerate)
    except Exception:
        return 0.0


# When does an image go to the captcha model (see _checks)? Measured with the
# bundled ocr-expr on 1,300 captchas and 600 rendered English lines (seeds
# 700000 and 710000): 9 English lines had a correct sum in their n-best;
# 4 of those read with a confidence (DecodeResult.conf) below 0.07, 3 were
# bare `d=d`; one captcha that verified read at 0.15, the next lowest at 0.41.
# Captcha lines cropped and resized to the model height are at most 4.3 times
# as wide as high before the model's width stretch (`captcha` draws 160-260 x
# 60-80 px); a long printed line is far wider.
ROUTE_MIN_CONF = 0.1
ROUTE_MAX_ASPECT = 8.0  # about twice the widest training captcha, unstretched


def _checks(decoded: list, arrays: list | None = None, stretch: float = 1.0) -> bool:
    """True when a captcha reading verifies itself: one line, not much wider
    than a captcha (ROUTE_MAX_ASPECT times the model's width `stretch`), read with some confidence
    (ROUTE_MIN_CONF), and the best hypothesis or an n-best entry *as read* is
    a well-formed expression with at least one operator whose stated result
    is right. (Recomputing the result would make almost any digit string
    "valid"; printed text read by the captcha model rarely states a correct
    sum by chance, and then mostly a trivial one like ``2=2`` read from a
    short word, or with a low confidence.)"""
    from ctcli.exprcheck import parse_and_check

    if len(decoded) != 1:
        return False
    if arrays and arrays[0].shape[1] > ROUTE_MAX_ASPECT * stretch * arrays[0].shape[0]:
        return False
    r = decoded[0]
    if getattr(r, "conf", 1.0) < ROUTE_MIN_CONF:
        return False
    texts = [r.text, *(h.text for h in getattr(r, "nbest", []) or [])]
    return any(parse_and_check(t) and _has_operator(t) for t in texts)


def _has_operator(text: str) -> bool:
    """An operator on the left-hand side (a leading minus sign does not count)."""
    lhs = text.split("=", 1)[0].lstrip("(-")
    return any(op in lhs for op in "+-*")


def _rerank_expr(
    text: str, hyps: list, words: list[Word], log_probs: np.ndarray, model
) -> tuple[str, list[Word]]:
    """Arithmetic-aware choice: the most likely (under the CTC posteriors)
    well-formed expression with a correct result among the n-best and their
    recomputed right-hand sides (see ctcli.exprcheck.rescore)."""
    from ctcli.exprcheck import rescore

    best = rescore(log_probs, [text] + [h.text for h in hyps], list(model.labels), model.blank)
    if best != text and words:
        words = [Word(best, words[0].start, words[-1].end, min(w.conf for w in words))]
    return best, words


def write_atomic(path: Path, content: str) -> None:
    """Write via a temp file in the same directory + rename: a reader never
    sees a half-written file, and an interrupted run leaves none behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(content)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def render_single(result: Result, fmt: str, words: bool, nbest: bool) -> str:
    """One input's output as a file's content (for -o DIR)."""
    if fmt == "json":
        return json.dumps(result.to_dict(words, nbest), ensure_ascii=False, indent=2) + "\n"
    buf = io.StringIO()
    w = make_writer(fmt, buf, words=words, nbest=nbest)
    w.begin()
    w.write(result)
    w.end()
    return buf.getvalue()
