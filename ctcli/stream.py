"""Streaming speech: audio blocks -> VAD segments -> incremental log-mel ->
chunked acoustic model -> streaming decoder -> partial and final results.

Exactness: for an utterance (a VAD segment), the streamed features, model
outputs and final transcript equal offline processing of the same samples;
the acoustic model runs chunk by chunk with its small fixed right context
(the convolutional front end's 3 frames = 30 ms, plus the model's top-layer
look-ahead if it has one) and its recurrent state carried across chunks.

Sources: a file (any format libsndfile reads, block by block, resampled on
the fly), stdin (WAV or raw s16le), or the microphone (sounddevice, imported
lazily). Memory stays bounded: an utterance is cut at MAX_UTTERANCE_S.
"""

from __future__ import annotations

import struct
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from ctcli.audio import DEFAULT_FEATURES, SAMPLE_RATE, logmel, normalize
from ctcli.errors import DeviceError, InputError
from ctcli.options import DEFAULT_MIN_SILENCE_S

BLOCK_S = 0.1  # seconds of audio per block read from a source
CHUNK_FRAMES = 8  # model output frames (x 40 ms) decoded per step: 320 ms partial cadence
MAX_UTTERANCE_S = 30.0  # an utterance longer than this is cut (bounded memory)


# ------------------------------------------------------------------ VAD


@dataclass
class VadConfig:
    """Energy voice-activity detection with endpointing."""

    enabled: bool = True
    threshold_db: float = 12.0  # speech when frame energy exceeds the noise floor by this much
    abs_floor_db: float = -55.0  # and exceeds this absolute level (dBFS)
    min_speech_s: float = 0.08  # speech must last this long to start an utterance
    min_silence_s: float = DEFAULT_MIN_SILENCE_S  # this much silence ends an utterance
    preroll_s: float = 0.25  # audio kept before the detected start
    frame_s: float = 0.01  # analysis frame


class EnergyVad:
    """Frame-energy VAD with an adaptive noise floor (fast down, slow up)."""

    def __init__(self, cfg: VadConfig, sr: int = SAMPLE_RATE):
        self.cfg = cfg
        self.n = int(sr * cfg.frame_s)
        self.floor = None
        self._rest = np.zeros(0, np.float32)
        self.consumed = 0  # samples of the stream covered by complete frames

    def frames(self, x: np.ndarray) -> list[bool]:
        """Speech flags for each complete analysis frame of the new samples;
        the first starts at the sample index `consumed` had before the call."""
        x = np.concatenate([self._rest, x])
        k = x.size // self.n
        self._rest = x[k * self.n :]
        self.consumed += k * self.n
        out = []
        for i in range(k):
            f = x[i * self.n : (i + 1) * self.n]
            e = 10 * np.log10(float(np.mean(f * f)) + 1e-10)
            if self.floor is None:
                self.floor = e
            self.floor = e if e < self.floor else self.floor + 0.02 * (e - self.floor) * 0.1
            out.append(e > self.floor + self.cfg.threshold_db and e > self.cfg.abs_floor_db)
        return out


# ------------------------------------------------------------------ features


class StreamingLogMel:
    """Incremental log-mel frames identical to `ctcli.audio.logmel` on the
    same samples (centred frames with zero padding at both ends)."""

    def __init__(self, features: dict | None = None):
        import librosa

        f = {**DEFAULT_FEATURES, **(features or {})}
        self.f = f
        self.n_fft, self.hop = int(f["n_fft"]), int(f["hop"])
        self.window = librosa.filters.get_window("hann", self.n_fft, fftbins=True).astype(
            np.float32
        )
        self.mel = librosa.filters.mel(
            sr=f["sample_rate"],
            n_fft=self.n_fft,
            n_mels=f["n_mels"],
            fmin=f["fmin"],
            fmax=f["fmax"],
        ).astype(np.float32)
        self.norm_state: dict = {}  # running mean normalisation (features["cmn_prior"])
        self.buf = np.zeros(self.n_fft // 2, np.float32)  # left zero padding (center=True)
        self.next = 0  # index (in buf) of the next frame's first sample
        self.total = 0  # samples received

    def _frames(self, end: int) -> np.ndarray:
        starts = list(range(self.next, end - self.n_fft + 1, self.hop))
        if not starts:
            return np.zeros((0, self.mel.shape[0]), np.float32)
        idx = np.asarray(starts)[:, None] + np.arange(self.n_fft)[None, :]
        spec = np.abs(np.fft.rfft(self.buf[idx] * self.window, axis=1)) ** 2
        self.next = starts[-1] + self.hop
        out = np.log(spec.astype(np.float32) @ self.mel.T + 1e-6)
        # drop consumed samples, keep what the next frame needs
        drop = self.next
        self.buf = self.buf[drop:]
        self.next -= drop
        return normalize(out.astype(np.float32), self.f, self.norm_state)

    def push(self, x: np.ndarray) -> np.ndarray:
        self.total += x.size
        self.buf = np.concatenate([self.buf, x.astype(np.float32)])
        return self._frames(self.buf.size)

    def finish(self) -> np.ndarray:
        """The last frames, with the right zero padding; as many frames in all
        as the offline front end gives (1 + samples // hop)."""
        n_total = 1 + self.total // self.hop
        produced_before = self._produced()
        self.buf = np.concatenate([self.buf, np.zeros(self.n_fft // 2 + self.n_fft, np.float32)])
        out = self._frames(self.buf.size)
        need = n_total - produced_before
        return out[:need]

    def _produced(self) -> int:
        # frames produced so far = (samples consumed before buf start + next) / hop
        return (self.total + self.n_fft // 2 - self.buf.size + self.next) // self.hop


# ------------------------------------------------------------------ acoustic model


class StreamingAcoustic:
    """Runs an `asr_conv_gru` or `asr_conformer` model chunk by chunk, exactly
    as offline.

    The front end is two kernel-3 convolutions with total time stride S (2 or
    4): output frame k needs input frames S*k-3 .. S*k+3. Each step convolves
    a window starting 2*S input frames before the first new output (dropping
    the outputs touched by the window's own padding). The GRU model carries
    its recurrent state; the conformer runs whole attention chunks as they
    complete, carrying each block's recent keys, values and convolution inputs.
    """

    def __init__(self, loaded):
        import torch

        self.torch = torch
        self.m = loaded.module
        self.device = loaded.device
        if not hasattr(self.m, "conv_frames") or not (
            hasattr(self.m, "recurrent") or hasattr(self.m, "encode_chunk")
        ):
            raise InputError(
                "this model cannot stream (needs an asr_conv_gru or asr_conformer model)"
            )
        self.S = int(getattr(self.m, "time_stride", 4))
        self.V = self.m.head.out_features // int(getattr(self.m, "upsample", 1))  # classes
        self.feats = np.zeros((0, 0), np.float32)
        self.offset = 0  # global index of feats[0]
        self.k = 0  # next output frame to produce
        self.h = None
        self.L = int(getattr(self.m, "lookahead", 0))
        self.top_buf = None  # top-layer frames held back as look-ahead context
        self.C = int(getattr(self.m, "back_chunk", 0))
        self.back_buf = None  # look-ahead outputs of the backward layer's open chunk
        self.chunked = hasattr(self.m, "encode_chunk")  # conformer: whole attention chunks
        self.pending = None  # conformer: conv frames of the chunk still arriving
        self.done = 0  # conformer: output frames emitted
        self.cache = None

    def _run(self, final: bool) -> np.ndarray:
        torch, S = self.torch, self.S
        n_in = self.offset + self.feats.shape[0]  # input frames seen
        if final:
            k_end = int(self.m.frame_lengths(torch.tensor(n_in)))  # offline encoder frames
        else:
            k_end = max(0, (n_in - 4) // S + 1)  # outputs whose inputs have all arrived
        if k_end <= self.k:
            if final and (self.top_buf is not None or self.back_buf is not None):
                return self._top(None, final)
            if final and self.pending is not None:
                return self._chunks(None, final)
            return np.zeros((0, self.V), np.float32)  # no new frame yet
        w0 = max(0, S * (self.k - 2))
        w1 = n_in if final else min(n_in, S * k_end + 4)
        x = self.feats[w0 - self.offset : w1 - self.offset]
        with torch.inference_mode():
            f = self.m.conv_frames(torch.from_numpy(np.ascontiguousarray(x))[None].to(self.device))
            first = self.k - w0 // S
            f = f[:, first : first + (k_end - self.k)]
            if not self.chunked:
                h, self.h = self.m.recurrent(f, self.h)
        lp = self._chunks(f, final) if self.chunked else self._top(h, final)
        self.k = k_end
        keep = max(0, S * (self.k - 2) - self.offset)  # frames before the next window
        self.feats = self.feats[keep:]
        self.offset += keep
        return lp

    def _top(self, h, final: bool) -> np.ndarray:
        """Output frames for new top-layer frames h, holding back the last
        `lookahead` of them until their right context has arrived."""
        torch = self.torch
        if self.L:
            if self.top_buf is not None:
                h = self.top_buf if h is None else torch.cat([self.top_buf, h], 1)
            self.top_buf = None
            if not final:
                n = h.shape[1]
                self.top_buf = h[:, max(0, n - self.L) :]
                if n <= self.L:
                    return np.zeros((0, self.V), np.float32)
        with torch.inference_mode():
            if not self.C:
                return self.m.top(h, end=final)[0].float().cpu().numpy()
            parts = [self.back_buf] + ([] if h is None else [self.m.ahead(h, end=final)])
            parts = [p for p in parts if p is not None]
            if not parts:
                return np.zeros((0, self.V), np.float32)
            a = torch.cat(parts, 1)
            n = a.shape[1] if final else a.shape[1] // self.C * self.C  # whole chunks
            self.back_buf = a[:, n:] if n < a.shape[1] else None
            if n == 0:
                return np.zeros((0, self.V), np.float32)
            return self.m.back_top(a[:, :n])[0].float().cpu().numpy()

    def _chunks(self, f, final: bool) -> np.ndarray:
        """Conformer: log-probs of every attention chunk completed by the new
        conv frames f (all that remain when `final`)."""
        torch = self.torch
        if self.pending is not None:
            f = self.pending if f is None else torch.cat([self.pending, f], 1)
        n = f.shape[1] if final else f.shape[1] // self.m.chunk * self.m.chunk
        self.pending = f[:, n:] if n < f.shape[1] else None
        if n == 0:
            return np.zeros((0, self.V), np.float32)
        with torch.inference_mode():
            lp, self.cache = self.m.encode_chunk(f[:, :n], self.done, self.cache)
        self.done += n
        return lp[0].float().cpu().numpy()

    def push(self, frames: np.ndarray) -> np.ndarray:
        if frames.shape[0]:
            self.feats = frames if self.feats.size == 0 else np.concatenate([self.feats, frames])
        return self._run(final=False)

    def finish(self) -> np.ndarray:
        return self._run(final=True)


# ------------------------------------------------------------------ sources


def file_blocks(path: str, block_s: float = BLOCK_S) -> Iterator[np.ndarray]:
    """Mono float32 16 kHz blocks of a file, read and resampled incrementally."""
    import soundfile as sf
    import soxr

    try:
        info = sf.info(path)
    except Exception:
        raise InputError("not a decodable audio file") from None
    rs = (
        soxr.ResampleStream(info.samplerate, SAMPLE_RATE, 1, dtype="float32")
        if info.samplerate != SAMPLE_RATE
        else None
    )
    blocksize = max(1, int(info.samplerate * block_s))
    with sf.SoundFile(path) as f:
        while True:
            x = f.read(blocksize, dtype="float32", always_2d=True)
            last = x.shape[0] < blocksize
            x = x.mean(axis=1)
            if rs is not None:
                x = rs.resample_chunk(x, last=last)
            if x.size:
                yield x
            if last:
                return


def stdin_blocks(
    stream, raw_rate: int = SAMPLE_RATE, block_s: float = BLOCK_S
) -> Iterator[np.ndarray]:
    """WAV (PCM 16/32-bit or float) or raw s16le mono from a pipe."""
    import soxr

    head = stream.read(12)
    rate, channels, fmt = raw_rate, 1, "<i2"
    pending = b""
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        while True:
            ch = stream.read(8)
            if len(ch) < 8:
                return
            cid, size = ch[:4], struct.unpack("<I", ch[4:])[0]
            if cid == b"fmt ":
                body = stream.read(size + (size & 1))
                tag, channels, rate = struct.unpack("<HHI", body[:8])
                bits = struct.unpack("<H", body[14:16])[0]
                if tag == 0xFFFE and len(body) >= 26:
                    tag = struct.unpack("<H", body[24:26])[0]
                fmt = {(1, 16): "<i2", (1, 32): "<i4", (3, 32): "<f4"}.get((tag, bits))
                if fmt is None:
                    raise InputError(f"unsupported WAV encoding (format {tag}, {bits} bits)")
            elif cid == b"data":
                break
            else:
                stream.read(size + (size & 1))
    else:
        pending = head
    width = np.dtype(fmt).itemsize * channels
    scale = {"<i2": 32768.0, "<i4": 2147483648.0, "<f4": 1.0}[fmt]
    rs = soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32") if rate != SAMPLE_RATE else None
    nbytes = int(rate * block_s) * width
    while True:
        data = pending + stream.read(nbytes - len(pending))
        pending = b""
        last = len(data) < nbytes
        usable = len(data) - len(data) % width
        x = (
            np.frombuffer(data[:usable], dtype=fmt)
            .astype(np.float32)
            .reshape(-1, channels)
            .mean(axis=1)
            / scale
        )
        if rs is not None:
            x = rs.resample_chunk(x, last=last)
        if x.size:
            yield x
        if last:
            return


def list_input_devices() -> list[dict]:
    try:
        import sounddevice as sd
    except OSError as e:  # PortAudio library missing
        raise DeviceError(f"no audio system: {e}") from None
    devs = [
        dict(d, index=i)
        for i, d in enumerate(sd.query_devices())
        if d.get("max_input_channels", 0) > 0
    ]
    if not devs:
        raise DeviceError("no audio input device found")
    return devs


def microphone_blocks(
    device: str | int | None, rate: int, block_s: float = BLOCK_S
) -> Iterator[np.ndarray]:
    """Blocks from the microphone via sounddevice, resampled to 16 kHz."""
    import queue

    import soxr

    list_input_devices()  # one clear error when there is none
    import sounddevice as sd

    q: queue.Queue = queue.Queue()
    rs = soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32") if rate != SAMPLE_RATE else None
    try:
        stream = sd.InputStream(
            samplerate=rate,
            channels=1,
            dtype="float32",
            device=device,
            blocksize=int(rate * block_s),
            callback=lambda d, *_: q.put(d[:, 0].copy()),
        )
    except Exception as e:
        raise DeviceError(f"cannot open audio input: {e}") from None
    with stream:
        while True:
            x = q.get()
            yield rs.resample_chunk(x) if rs is not None else x


def realtime(blocks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    """Pace blocks to wall-clock time (simulated live audio)."""
    t0 = time.monotonic()
    audio = 0.0
    for x in blocks:
        audio += x.size / SAMPLE_RATE
        delay = t0 + audio - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield x


# ------------------------------------------------------------------ recogniser


@dataclass
class StreamResult:
    """A partial or final hypothesis with its latency accounting."""

    text: str
    final: bool
    start: float  # seconds of stream time where the utterance starts
    end: float  # stream time covered by this result
    wall: float  # time.monotonic() when produced
    words: list = field(default_factory=list)  # ctcli.results.Word, stream-time seconds
    conf: float = 1.0
    utterance: int = 0


class Utterance:
    """Features -> model -> decoder for one segment."""

    def __init__(self, loaded, decoder, start_sample: int):
        self.feats = StreamingLogMel(loaded.meta.get("features"))
        self.acoustic = StreamingAcoustic(loaded)
        self.stream = decoder.stream()
        self.start_sample = start_sample
        self.samples = 0
        self.frames = 0

    def push(self, x: np.ndarray) -> None:
        self.samples += x.size
        lp = self.acoustic.push(self.feats.push(x))
        if lp.shape[0]:
            self.stream.feed(lp)
            self.frames += lp.shape[0]

    def finish(self):
        tail = self.feats.finish()
        if tail.shape[0]:
            out = self.acoustic.push(tail)
            if out.shape[0]:
                self.stream.feed(out)
                self.frames += out.shape[0]
        out = self.acoustic.finish()
        if out.shape[0]:
            self.stream.feed(out)
            self.frames += out.shape[0]
        return self.stream.finish() if self.frames else None


class StreamRecognizer:
    """Segments a block stream with the VAD and recognises each segment."""

    def __init__(
        self,
        loaded,
        decoder,
        vad: VadConfig,
        on_result: Callable[[StreamResult], None],
        partial_every: int = CHUNK_FRAMES,
    ):
        self.loaded = loaded
        self.decoder = decoder
        self.vad_cfg = vad
        self.vad = EnergyVad(vad)
        self.on_result = on_result
        self.stride = float(loaded.frame_stride)
        self.partial_every = partial_every
        self.pos = 0  # samples seen
        self.pre: deque[np.ndarray] = deque()
        self.pre_n = 0
        self.utt: Utterance | None = None
        self.n_utt = 0
        self.speech_run = 0
        self.silence_run = 0
        self._last_partial_frames = 0

    def _emit(self, r, final: bool) -> None:
        from ctcli.results import Word, tidy_text

        u = self.utt
        t0 = u.start_sample / SAMPLE_RATE
        words = [
            Word(w.text, t0 + w.start * self.stride, t0 + w.end * self.stride, float(w.conf))
            for w in (r.words if r else [])
        ]
        self.on_result(
            StreamResult(
                tidy_text(r.text) if r else "",
                final,
                t0,
                (u.start_sample + u.samples) / SAMPLE_RATE,
                time.monotonic(),
                words,
                float(r.conf) if r else 1.0,
                self.n_utt,
            )
        )

    def _start(self, start: int) -> None:
        """Open an utterance at sample `start` (inside the pre-roll buffer)."""
        buf_start = self.pos - self.pre_n
        start = max(start, buf_start)
        self.utt = Utterance(self.loaded, self.decoder, start)
        self._last_partial_frames = 0
        self._replay(start - buf_start)

    def _replay(self, skip: int) -> None:
        for b in self.pre:
            if skip >= b.size:
                skip -= b.size
                continue
            self.utt.push(b[skip:])
            skip = 0
        self.pre.clear()
        self.pre_n = 0

    def _end(self) -> None:
        r = self.utt.finish()
        if r is not None and r.text:
            self._emit(r, final=True)
        self.utt = None
        self.n_utt += 1
        self.silence_run = 0

    def push(self, x: np.ndarray) -> None:
        cfg = self.vad_cfg
        first = self.vad.consumed
        flags = self.vad.frames(x) if cfg.enabled else []
        if self.utt is None:
            self.pre.append(x)
            self.pre_n += x.size
            keep = cfg.preroll_s * SAMPLE_RATE + x.size + self.vad.n
            while self.pre and self.pre_n - self.pre[0].size >= keep:
                self.pre_n -= self.pre.popleft().size
            self.pos += x.size
            onset = 0 if not cfg.enabled else None
            run = self.speech_run
            for i, f in enumerate(flags):
                run = run + 1 if f else 0
                if run * cfg.frame_s >= cfg.min_speech_s:
                    onset = first + (i - run + 1) * self.vad.n  # sample where the speech run began
                    break
            self.speech_run = run
            if onset is not None:
                self.speech_run = 0
                self.silence_run = 0
                self._start(
                    int(onset - cfg.preroll_s * SAMPLE_RATE)
                    if cfg.enabled
                    else self.pos - self.pre_n
                )
            return
        self.pos += x.size
        self.utt.push(x)
        if cfg.enabled:
            for f in flags:
                self.silence_run = 0 if f else self.silence_run + 1
        if self.utt.frames - self._last_partial_frames >= self.partial_every:
            self._last_partial_frames = self.utt.frames
            self._emit(self.utt.stream.partial(), final=False)
        if (
            cfg.enabled and self.silence_run * cfg.frame_s >= cfg.min_silence_s
        ) or self.utt.samples >= MAX_UTTERANCE_S * SAMPLE_RATE:
            self._end()

    def close(self) -> None:
        """End of stream (or Ctrl-C): finish the pending utterance."""
        if self.utt is not None:
            self._end()


def warm_up(loaded, decoder) -> None:
    """Run the model and decoder once on silence so that one-off costs (JIT
    compilation, allocator warm-up) do not delay the first live result."""
    u = Utterance(loaded, decoder, 0)
    u.push(np.zeros(SAMPLE_RATE // 2, np.float32))
    u.finish()


def run(blocks: Iterator[np.ndarray], recognizer: StreamRecognizer) -> None:
    try:
        for x in blocks:
            recognizer.push(x)
    finally:
        recognizer.close()


def segments_offline(wave: np.ndarray, vad: VadConfig) -> list[tuple[int, int]]:
    """The (start, end) sample ranges the streaming recogniser would cut,
    computed on a whole waveform (blocks of BLOCK_S)."""
    rec = _SegmentOnly(vad)
    n = int(SAMPLE_RATE * BLOCK_S)
    for i in range(0, wave.size, n):
        rec.push(wave[i : i + n])
    rec.close()
    return rec.segments


def speech_span(wave: np.ndarray, vad: VadConfig | None = None) -> tuple[int, int]:
    """Samples [start, end) from the first to the last utterance the streaming
    recogniser would cut (pre-roll and endpoint silence included); the whole
    wave when it finds none. A file shorter than the long-audio limit is read
    over this span, so `transcribe` hears what `listen` hears: the silence
    around the speech otherwise enters the running mean normalisation and
    gives the search frames to fill."""
    segs = segments_offline(wave, vad or VadConfig())
    return (segs[0][0], segs[-1][1]) if segs else (0, int(wave.size))


def span_logmel(wave: np.ndarray, features: dict | None) -> tuple[int, np.ndarray]:
    """How `transcribe` reads a short file: the log-mel frames of its speech
    span (`speech_span`) and the span's first sample, for file-time places."""
    a, b = speech_span(wave)
    return a, logmel(wave[a:b], features)


class _SegmentOnly(StreamRecognizer):
    """The recogniser's segmentation without any model (for offline use)."""

    def __init__(self, vad: VadConfig):
        self.vad_cfg, self.vad = vad, EnergyVad(vad)
        self.pos = self.pre_n = self.n_utt = self.speech_run = self.silence_run = 0
        self.pre = deque()
        self.utt = None
        self.segments: list[tuple[int, int]] = []
        self.partial_every = 10**9
        self._last_partial_frames = 0

    def _start(self, start: int) -> None:
        buf_start = self.pos - self.pre_n
        start = max(start, buf_start)
        self.utt = _Counter(start)
        self._replay(start - buf_start)

    def _end(self) -> None:
        self.segments.append((self.utt.start_sample, self.utt.start_sample + self.utt.samples))
        self.utt = None
        self.silence_run = 0


class _Counter:
    def __init__(self, start: int):
        self.start_sample, self.samples, self.frames = start, 0, 0

    def push(self, x: np.ndarray) -> None:
        self.samples += x.size


def print_partial(r: StreamResult) -> None:
    """Redraw the partial hypothesis in place on a terminal stderr."""
    sys.stderr.write("\r\033[K" + r.text[-200:])
    sys.stderr.flush()
