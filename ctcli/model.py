"""Acoustic and optical CTC networks, and self-describing checkpoints.

Three architectures:

* ``crnn`` (images): a small VGG-style CNN over a fixed-height line image,
  height collapsed into channels, a bidirectional GRU over width, and a
  per-frame classifier. One output frame per ``frame_stride`` = 2 input px.
* ``asr_conv_gru`` (audio): two stride-2 convolutions over log-mel frames
  (x4 subsampling in time), a unidirectional GRU, and a classifier.
* ``asr_conformer`` (audio): the same front end, then conformer blocks whose
  self-attention is limited to the frame's chunk and a few chunks before it
  and whose convolutions are causal, so it streams chunk by chunk.

A checkpoint is a plain dict, loadable with ``torch.load(weights_only=True)``::

    {arch, dims, kind, alphabet, blank, features, frame_stride, state_dict, ...extra}

``alphabet`` is the full label list indexed by output unit; ``alphabet[blank]``
is the CTC blank (conventionally ``""``).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ctcli.errors import ModelLoadError

CHECKPOINT_KEYS = (
    "arch",
    "dims",
    "kind",
    "alphabet",
    "blank",
    "features",
    "frame_stride",
    "state_dict",
)


# --------------------------------------------------------------------------- CRNN

# A CRNN forward call costs about as much as this many extra input columns of
# every item; LoadedModel._groups weighs padding by it. Measured with
# bench/ocr.py (ocr-en, 500 held-out lines, one thread, lines per CPU-second
# at batch 16 / 64): 0 -> 51 / 49, 150 -> 61 / 72, 400 -> 67 / 80, no split
# (pad to the widest) -> 65 / 36.
GROUP_OVERHEAD_PX = 400


def _zero_past(x: torch.Tensor, lengths: torch.Tensor, time_dim: int) -> torch.Tensor:
    """x (batch first) with every frame at or after each item's length set to zero."""
    t = torch.arange(x.shape[time_dim], device=x.device)
    keep = t[None, :] < lengths.to(x.device)[:, None]  # B x T
    shape = [1] * x.dim()
    shape[0], shape[time_dim] = keep.shape
    return x * keep.view(shape).to(x.dtype)


def _conv_bn(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class CRNN(nn.Module):
    """CNN + BiGRU line recogniser.

    Args:
        n_classes: output units, blank included.
        height: input line height in px (must be divisible by 16).
        channels: conv widths of the four blocks.
        rnn_hidden: GRU units per direction.
        rnn_layers: stacked bidirectional GRU layers.
    """

    def __init__(
        self,
        n_classes: int,
        height: int = 32,
        channels: tuple[int, ...] = (32, 48, 96, 128),
        rnn_hidden: int = 128,
        rnn_layers: int = 2,
        dropout: float = 0.1,
    ):
        super().__init__()
        assert height % 16 == 0, "height must be divisible by 16"
        c1, c2, c3, c4 = channels
        self.cnn = nn.Sequential(
            _conv_bn(1, c1),  #   B x c1 x H    x W
            nn.MaxPool2d(2, 2),  # B x c1 x H/2  x W/2
            _conv_bn(c1, c2),  #  B x c2 x H/2  x W/2
            nn.MaxPool2d((2, 1), (2, 1)),  # B x c2 x H/4 x W/2
            _conv_bn(c2, c3),  #  B x c3 x H/4  x W/2
            nn.MaxPool2d((2, 1), (2, 1)),  # B x c3 x H/8 x W/2
            _conv_bn(c3, c4),  #  B x c4 x H/8  x W/2
            nn.MaxPool2d((2, 1), (2, 1)),  # B x c4 x H/16 x W/2
        )
        feat = c4 * (height // 16)
        self.proj = nn.Sequential(
            nn.Linear(feat, 2 * rnn_hidden), nn.ReLU(inplace=True), nn.Dropout(dropout)
        )
        self.rnn = nn.GRU(
            2 * rnn_hidden,
            rnn_hidden,
            num_layers=rnn_layers,
            bidirectional=True,
            batch_first=True,
            dropout=dropout if rnn_layers > 1 else 0.0,
        )
        self.head = nn.Linear(2 * rnn_hidden, n_classes)
        # channels-last convolutions and pooling: about 1.5x faster on CPU here
        # (a 1-channel input cannot carry the layout; the weights select it)
        self.cnn.to(memory_format=torch.channels_last)

    def _cnn_masked(self, x: torch.Tensor, widths: torch.Tensor) -> torch.Tensor:
        """The CNN on a padded batch, each item's columns past its own width
        zeroed after every block: BatchNorm turns the zero padding into
        non-zero activations, which the next convolution would see at the
        line's right edge where a lone line sees zeros. With the mask an item
        gets the same features in any batch as alone."""
        w = widths
        for layer in self.cnn:
            x = layer(x)
            if isinstance(layer, nn.MaxPool2d):
                kw = (
                    layer.kernel_size
                    if isinstance(layer.kernel_size, int)
                    else layer.kernel_size[1]
                )
                w = torch.div(w, kw, rounding_mode="floor")
            x = _zero_past(x, w, time_dim=3)
        return x

    @staticmethod
    def output_lengths(widths: torch.Tensor) -> torch.Tensor:
        """Frames produced for input widths (px): one per 2 px."""
        return torch.div(widths, 2, rounding_mode="floor")

    def forward(
        self, x: torch.Tensor, widths: torch.Tensor | None = None, pack: bool = True
    ) -> torch.Tensor:
        """x: B x 1 x H x W float (ink 1, background 0); widths: B (px) or None.
        With widths, each item's padding is masked in the CNN and (`pack`)
        skipped by the GRU; training passes pack=False (packing makes the
        GRU's backward pass about 1.8x slower on CPU, and width-bucketed
        batches have little padding).

        Returns log-probabilities B x T x V, T = W // 2.
        """
        if widths is not None and x.shape[0] > 1:
            f = self._cnn_masked(x, widths)
        else:
            f = self.cnn(x)  #                      B x C x H/16 x T
        b, c, h, t = f.shape
        f = f.permute(0, 3, 1, 2).reshape(b, t, c * h)  # B x T x C*H/16
        f = self.proj(f)  #                          B x T x 2*hidden
        if widths is not None and b > 1 and pack:
            lengths = self.output_lengths(widths).clamp(min=1, max=t).cpu()
            packed = nn.utils.rnn.pack_padded_sequence(
                f, lengths, batch_first=True, enforce_sorted=False
            )
            out, _ = self.rnn(packed)
            f, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=t)
        else:
            f, _ = self.rnn(f)  #                    B x T x 2*hidden
        return self.head(f).log_softmax(-1)  #       B x T x V


# --------------------------------------------------------------------------- audio


class _ConvFront(nn.Module):
    """The acoustic models' front end: two kernel-3 convolutions over log-mel
    frames (both halve the mel axis; the first halves time, the second too when
    time_stride is 4), 3 input frames (30 ms) of look-ahead; and the output
    head, which may emit `upsample` CTC frames per encoder frame."""

    def _init_front(self, n_mels: int, conv_channels: int, time_stride: int, upsample: int) -> int:
        """Builds `self.conv`; returns the per-frame feature size C*F/4."""
        if time_stride not in (2, 4):
            raise ValueError(f"time_stride must be 2 or 4, not {time_stride}")
        if upsample not in (1, 2, 3, 4):
            raise ValueError(f"upsample must be 1 to 4, not {upsample}")
        self.time_stride, self.upsample = time_stride, int(upsample)
        self.conv = nn.Sequential(
            nn.Conv2d(1, conv_channels, 3, stride=2, padding=1),
            nn.ReLU(inplace=True),  # B x C x T/2 x F/2
            nn.Conv2d(conv_channels, conv_channels, 3, stride=(time_stride // 2, 2), padding=1),
            nn.ReLU(inplace=True),  # B x C x T/time_stride x F/4
        )
        return conv_channels * ((((n_mels + 1) // 2) + 1) // 2)

    def frame_lengths(self, frames: torch.Tensor) -> torch.Tensor:
        """Encoder frames for input frame counts (ceil(T/2), then ceil(./2) again at x4)."""
        half = torch.div(frames + 1, 2, rounding_mode="floor")
        return half if self.time_stride == 2 else torch.div(half + 1, 2, rounding_mode="floor")

    def output_lengths(self, frames: torch.Tensor) -> torch.Tensor:
        """CTC output frames for input frame counts: upsample per encoder frame."""
        return self.frame_lengths(frames) * self.upsample

    def _head(self, h: torch.Tensor) -> torch.Tensor:
        """Encoder frames B x T' x width -> log-probs B x T'*upsample x V: the
        head's outputs for one frame are `upsample` consecutive CTC frames,
        which gives character CTC twice (or more) the frames per character
        at the encoder's cost."""
        y = self.head(h)
        b, t, _ = y.shape
        return y.reshape(b, t * self.upsample, -1).log_softmax(-1)

    def conv_frames(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """x: B x T x n_mels -> B x T/time_stride x C*F/4 (per-frame conv features).
        With `lengths`, the first convolution's frames past each item's end are
        zeroed, so the second one sees the same zero padding as the item alone."""
        f = self.conv[1](self.conv[0](x.unsqueeze(1)))  # B x C x T/2 x F/2
        if lengths is not None:
            f = _zero_past(f, torch.div(lengths + 1, 2, rounding_mode="floor"), time_dim=2)
        f = self.conv[3](self.conv[2](f))  #           B x C x T/stride x F/4
        b, c, t, fr = f.shape
        return f.permute(0, 2, 1, 3).reshape(b, t, c * fr)


class ConvGRU(_ConvFront):
    """Streaming-friendly acoustic model: conv subsampling (x2 or x4 in time),
    then a stack of unidirectional GRU layers, each with a residual connection
    and layer norm (plain stacked GRUs sit on the CTC blank plateau for a long
    time).

    Causal except for the front end's 3 input frames (30 ms) of look-ahead, so
    it runs chunk by chunk with carried state (`ctcli.stream`).

    Args:
        n_classes: output units, blank included.
        n_mels: input feature bins.
        conv_channels: channels of the two kernel-3 convolutions (both halve
            the mel axis; the first halves time, the second too when
            time_stride is 4).
        rnn_hidden: model width (GRU units); rnn_layers: stacked GRU layers.
        time_stride: input frames per output frame, 2 or 4. Character CTC
            needs about two output frames per character: x4 (40 ms) leaves
            fast synthetic speech about 1.4-2, x2 (20 ms) about 3-4.
        lookahead: output frames of right context for the top layer (0 =
            none). A depthwise convolution over the last GRU layer's outputs
            at t .. t+lookahead, then a pointwise mix, residual and layer norm
            (the "row convolution" of Deep Speech 2): a causal GRU otherwise
            has to spell a sound before hearing what follows it. Adds
            lookahead * time_stride * 10 ms to streaming latency.
        upsample: CTC output frames per encoder frame (the head emits that
            many label distributions per frame): 2 at stride 4 gives 20-ms
            CTC frames, room for fast speech's letters, at almost no cost.
        back_chunk: encoder frames per chunk of a backward GRU layer after the
            look-ahead (0 = none). The frames are cut into chunks of this many
            from the start of the utterance, and a GRU reads each chunk from
            its end to its start, so frame t hears the rest of its chunk
            (up to back_chunk - 1 frames, x 40 ms at stride 4): right context
            for every layer below the head, at most one chunk of streaming
            latency. Its output enters through a residual projection that
            starts at zero (warm starts begin as the model without it).
    """

    def __init__(
        self,
        n_classes: int,
        n_mels: int = 80,
        conv_channels: int = 32,
        rnn_hidden: int = 256,
        rnn_layers: int = 2,
        time_stride: int = 4,
        lookahead: int = 0,
        upsample: int = 1,
        back_chunk: int = 0,
    ):
        super().__init__()
        n_front = self._init_front(n_mels, conv_channels, time_stride, upsample)
        self.proj = nn.Linear(n_front, rnn_hidden)
        self.norm_in = nn.LayerNorm(rnn_hidden)
        self.rnns = nn.ModuleList(
            nn.GRU(rnn_hidden, rnn_hidden, batch_first=True) for _ in range(rnn_layers)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(rnn_hidden) for _ in range(rnn_layers))
        self.lookahead = int(lookahead)
        if self.lookahead < 0:
            raise ValueError(f"lookahead must be >= 0, not {lookahead}")
        if self.lookahead:
            self.ahead_dw = nn.Conv1d(
                rnn_hidden, rnn_hidden, self.lookahead + 1, groups=rnn_hidden, bias=False
            )
            self.ahead_pw = nn.Linear(rnn_hidden, rnn_hidden)
            nn.init.zeros_(self.ahead_pw.weight)  # starts as a pass-through (warm starts)
            nn.init.zeros_(self.ahead_pw.bias)
            self.ahead_norm = nn.LayerNorm(rnn_hidden)
        self.back_chunk = int(back_chunk)
        if self.back_chunk < 0:
            raise ValueError(f"back_chunk must be >= 0, not {back_chunk}")
        if self.back_chunk:
            self.back_rnn = nn.GRU(rnn_hidden, rnn_hidden, batch_first=True)
            self.back_out = nn.Linear(rnn_hidden, rnn_hidden)
            nn.init.zeros_(self.back_out.weight)  # starts as a pass-through (warm starts)
            nn.init.zeros_(self.back_out.bias)
        self.head = nn.Linear(rnn_hidden, n_classes * self.upsample)

    def recurrent(self, f: torch.Tensor, state: list | None = None) -> tuple[torch.Tensor, list]:
        """Conv features B x T' x C*F/4 -> top GRU outputs B x T' x hidden, carrying
        the GRU states (one per layer) for chunked use."""
        h = self.norm_in(torch.relu(self.proj(f)))  # B x T' x hidden
        new_state = []
        for i, (rnn, norm) in enumerate(zip(self.rnns, self.norms, strict=True)):
            y, s = rnn(h, None if state is None else state[i])
            h = norm(h + y)  #                          B x T' x hidden (residual)
            new_state.append(s)
        return h, new_state

    def ahead(self, h: torch.Tensor, end: bool = True) -> torch.Tensor:
        """Top GRU outputs B x T' x hidden -> look-ahead layer outputs. Output t
        reads h[t .. t+lookahead]: `end` pads zeros after the last frame (the
        input is complete) and gives T' outputs; otherwise the last
        `lookahead` frames are context only and T' - lookahead come out."""
        if not self.lookahead:
            return h
        c = h.transpose(1, 2)  # B x hidden x T'
        if end:
            c = nn.functional.pad(c, (0, self.lookahead))
        a = self.ahead_dw(c).transpose(1, 2)  # B x T'(-lookahead) x hidden
        return self.ahead_norm(h[:, : a.shape[1]] + self.ahead_pw(torch.relu(a)))

    def back(self, a: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """The chunked backward layer over look-ahead outputs a (B x T' x hidden)
        whose first frame starts a chunk: each chunk of `back_chunk` frames
        (the last one shorter; with `lengths`, each item's own last one ends
        at its length) is read from its end, and the result added to a."""
        if not self.back_chunk:
            return a
        b, t, d = a.shape
        c = self.back_chunk
        n = -(-t // c)  # chunks
        pos = torch.arange(n * c, device=a.device)
        start = pos - pos % c
        stop = torch.minimum(
            start[None, :] + c,
            (torch.full((b,), t) if lengths is None else lengths.to(torch.long).clamp(max=t))
            .to(a.device)[:, None]
            .expand(b, n * c),
        )  # B x n*c: end of each frame's chunk, cut at the item's length
        valid = pos[None, :] < stop
        # reversal inside each chunk's valid part (an involution; padding stays put)
        idx = torch.where(valid, start[None, :] + stop - 1 - pos[None, :], pos[None, :])
        pad = nn.functional.pad(a, (0, 0, 0, n * c - t))
        g = idx[:, :, None].expand(b, n * c, d)
        rev = pad.gather(1, g)  # every chunk's valid frames last-first, then its padding
        y, _ = self.back_rnn(rev.reshape(b * n, c, d))
        y = y.reshape(b, n * c, d).gather(1, g)[:, :t]  # back in time order
        return a + self.back_out(y)  # no norm after it: a warm start reads as before

    def top(self, h: torch.Tensor, end: bool = True) -> torch.Tensor:
        """Top GRU outputs B x T' x hidden -> log-probs (the look-ahead, see
        `ahead`; then the head). A model with a backward layer needs its
        chunks whole: `ahead`, then `back_top` on whole chunks."""
        if self.back_chunk:
            raise ValueError("a model with back_chunk: use ahead() and back_top() on whole chunks")
        return self._head(self.ahead(h, end))

    def back_top(self, a: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Look-ahead outputs, starting at a chunk boundary and ending at one
        (or at the utterance's end; `lengths` as in `back`) -> log-probs: the
        backward layer, then the head."""
        return self._head(self.back(a, lengths))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """x: B x T x n_mels log-mel. Returns log-probabilities B x T' x V (see output_lengths).
        Causal after the front end (and the look-ahead and backward chunks):
        given `lengths`, padding after an item's end does not change its frames."""
        h, _ = self.recurrent(self.conv_frames(x, lengths))
        n = None if lengths is None else self.frame_lengths(lengths)
        if self.lookahead and lengths is not None:  # the look-ahead sees zeros past each end
            h = _zero_past(h, n, time_dim=1)
        return self.back_top(self.ahead(h), n)


def _rope(x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Rotary position embedding: x B x H x T x D (D even) rotated by position
    pos (T,), so that attention scores depend on relative offsets only."""
    d = x.shape[-1] // 2
    inv = 10000.0 ** (-torch.arange(d, device=x.device, dtype=torch.float32) / d)
    ang = pos.to(torch.float32)[:, None] * inv[None, :]  # T x D/2
    cos, sin = ang.cos().to(x.dtype), ang.sin().to(x.dtype)
    x1, x2 = x[..., :d], x[..., d:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], -1)


def _feed_forward(d: int, ff: int) -> nn.Sequential:
    return nn.Sequential(nn.LayerNorm(d), nn.Linear(d, ff), nn.SiLU(), nn.Linear(ff, d))


class _ConformerBlock(nn.Module):
    """Half-step feed-forward, chunk-masked self-attention (rotary positions),
    causal depthwise-convolution module, half-step feed-forward, layer norm."""

    def __init__(self, d: int, heads: int, ff: int, kernel: int):
        super().__init__()
        self.heads = heads
        self.ff1 = _feed_forward(d, ff)
        self.att_norm = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.att_out = nn.Linear(d, d)
        self.conv_norm = nn.LayerNorm(d)
        self.pw1 = nn.Linear(d, 2 * d)
        self.dw = nn.Conv1d(d, d, kernel, groups=d)
        self.dw_norm = nn.LayerNorm(d)
        self.pw2 = nn.Linear(d, d)
        self.ff2 = _feed_forward(d, ff)
        self.norm = nn.LayerNorm(d)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        pos: torch.Tensor,
        cache: dict | None = None,
        keep: int = 0,
    ) -> torch.Tensor:
        """x B x T x d at positions pos (T,). With `cache` (streaming; empty on
        the first call), the keys, values and convolution inputs of earlier
        frames come from it, `mask` covers cached + new keys, and the cache is
        updated in place, keeping the last `keep` keys and values."""
        b, t, d = x.shape
        x = x + 0.5 * self.ff1(x)
        q, k, v = self.qkv(self.att_norm(x)).view(b, t, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        q, k = _rope(q, pos), _rope(k, pos)
        if cache:
            k, v = torch.cat([cache["k"], k], 2), torch.cat([cache["v"], v], 2)
        a = nn.functional.scaled_dot_product_attention(q, k, v, mask)
        x = x + self.att_out(a.transpose(1, 2).reshape(b, t, d))
        c = nn.functional.glu(self.pw1(self.conv_norm(x)), -1).transpose(1, 2)  # B x d x T
        left = self.dw.kernel_size[0] - 1
        c = torch.cat([cache["conv"], c], 2) if cache else nn.functional.pad(c, (left, 0))
        if cache is not None:
            cache.update(k=k[:, :, -keep:], v=v[:, :, -keep:], conv=c[:, :, c.shape[2] - left :])
        c = self.dw(c).transpose(1, 2)
        x = x + self.pw2(nn.functional.silu(self.dw_norm(c)))
        x = x + 0.5 * self.ff2(x)
        return self.norm(x)


class ChunkConformer(_ConvFront):
    """Streaming-capable conformer: the conv front end, then conformer blocks
    whose self-attention sees the frame's own chunk and `left_chunks` chunks
    before it, and whose convolution is causal. Right context is therefore
    at most one chunk (plus the front end's 30 ms); left context grows by
    (left_chunks + 1) chunks and kernel - 1 frames per block.

    Args:
        n_classes, n_mels, conv_channels, time_stride: as ConvGRU.
        d_model, layers, heads, ff: block width, depth, attention heads,
            feed-forward width.
        kernel: depthwise convolution taps (causal).
        chunk: encoder frames per attention chunk (x 40 ms at stride 4).
        left_chunks: earlier chunks each frame attends to.
        upsample: as ConvGRU.
    """

    def __init__(
        self,
        n_classes: int,
        n_mels: int = 80,
        conv_channels: int = 32,
        time_stride: int = 4,
        d_model: int = 144,
        layers: int = 8,
        heads: int = 4,
        ff: int = 576,
        kernel: int = 15,
        chunk: int = 8,
        left_chunks: int = 4,
        upsample: int = 1,
    ):
        super().__init__()
        if d_model % heads or (d_model // heads) % 2:
            raise ValueError("d_model must split into heads of even width")
        n_front = self._init_front(n_mels, conv_channels, time_stride, upsample)
        self.chunk, self.left_chunks = int(chunk), int(left_chunks)
        self.proj = nn.Linear(n_front, d_model)
        self.blocks = nn.ModuleList(
            _ConformerBlock(d_model, heads, ff, kernel) for _ in range(layers)
        )
        self.head = nn.Linear(d_model, n_classes * self.upsample)

    def _mask(self, q_pos: torch.Tensor, k_pos: torch.Tensor) -> torch.Tensor:
        cq, ck = q_pos // self.chunk, k_pos // self.chunk
        d = cq[:, None] - ck[None, :]
        return (d >= 0) & (d <= self.left_chunks)  # Tq x Tk

    def encode(self, f: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Conv features B x T' x C*F/4 -> log-probs B x T' x V."""
        t = f.shape[1]
        pos = torch.arange(t, device=f.device)
        mask = self._mask(pos, pos)
        if lengths is not None:  # padded keys never attended (each frame still sees itself)
            valid = pos[None, :] < lengths.to(f.device)[:, None]  # B x T'
            eye = torch.eye(t, dtype=torch.bool, device=f.device)
            mask = ((mask[None] & valid[:, None, :]) | eye[None])[:, None]  # B x 1 x T' x T'
        h = self.proj(f)
        for blk in self.blocks:  # causal conv + masked keys: padding never reaches valid frames
            h = blk(h, mask, pos)
        return self._head(h)

    def encode_chunk(self, f: torch.Tensor, start: int, cache: list | None) -> tuple:
        """Streaming: conv features of frames start .. start+T'-1 (start a
        multiple of `chunk`; T' whole chunks, except at the end of the input)
        -> (log-probs, cache for the next call); exactly the frames `encode`
        gives for the whole input."""
        t = f.shape[1]
        if cache is None:
            cache = [{} for _ in self.blocks]
        n_past = cache[0]["k"].shape[2] if cache[0] else 0
        pos = torch.arange(start, start + t, device=f.device)
        mask = self._mask(pos, torch.arange(start - n_past, start + t, device=f.device))
        h = self.proj(f)
        keep = self.left_chunks * self.chunk  # the keys the next chunk attends to
        for blk, c in zip(self.blocks, cache, strict=True):
            h = blk(h, mask, pos, c, keep)
        return self._head(h), cache

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """x: B x T x n_mels log-mel. Returns log-probabilities B x T' x V (see output_lengths);
        given `lengths`, padding after an item's end does not change its frames."""
        f = self.conv_frames(x, lengths)
        return self.encode(f, None if lengths is None else self.frame_lengths(lengths))


ARCHS = {"crnn": CRNN, "asr_conv_gru": ConvGRU, "asr_conformer": ChunkConformer}


def build_model(arch: str, **dims: Any) -> nn.Module:
    """Instantiate an architecture by name with its dimension kwargs."""
    if arch not in ARCHS:
        raise ModelLoadError(f"unknown model architecture {arch!r}")
    dims = {k: tuple(v) if isinstance(v, list) else v for k, v in dims.items()}
    return ARCHS[arch](**dims)


# --------------------------------------------------------------------------- checkpoints


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    *,
    arch: str,
    dims: dict,
    kind: str,
    alphabet: list[str],
    blank: int,
    features: dict,
    frame_stride: float,
    extra: dict | None = None,
) -> None:
    """Write a self-describing checkpoint atomically (temp file + rename)."""
    ckpt: dict[str, Any] = dict(extra or {})
    ckpt.update(
        arch=arch,
        dims={k: list(v) if isinstance(v, tuple) else v for k, v in dims.items()},
        kind=kind,
        alphabet=list(alphabet),
        blank=int(blank),
        features=dict(features),
        frame_stride=float(frame_stride),
        state_dict={k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
    )
    atomic_torch_save(ckpt, path)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


@dataclass
class LoadedModel:
    """A model ready for batched inference."""

    module: nn.Module
    kind: str  # "image" | "audio"
    labels: list[str]
    blank: int
    meta: dict = field(default_factory=dict)  # checkpoint minus state_dict
    frame_stride: float = 1.0  # image: preprocessed px per frame; audio: seconds per frame
    device: str = "cpu"
    max_batch: int = 64

    @property
    def height(self) -> int | None:
        """Input line height for image models."""
        return self.meta.get("features", {}).get("height")

    @property
    def line_options(self) -> dict:
        """Keyword arguments of ctcli.image.load_lines that match this image
        model's training data (height, line splitting, crop mode)."""
        f = self.meta.get("features", {})
        return {
            "height": int(f.get("height", 32)),
            "split": bool(f.get("split_lines", True)),
            "crop": str(f.get("crop", "fixed")),  # checkpoints before crop modes: fixed
            "stretch": float(f.get("stretch", 1.0)),  # width factor (resize_to_height)
        }

    def _groups(self, order: list[int], lengths: list[int]) -> list[list[int]]:
        """Split items sorted by length into forward batches of at most
        max_batch. Images: a new batch starts when padding every item of the
        current one to the next item's width would cost more columns than a
        forward call's own overhead (GROUP_OVERHEAD_PX), so lines of very
        different widths are not padded to the widest of them."""
        if self.kind != "image":
            return [order[s : s + self.max_batch] for s in range(0, len(order), self.max_batch)]
        groups: list[list[int]] = []
        top = 0  # width of the current batch (its last, widest item)
        for i, n in zip(order, lengths, strict=True):
            if (
                not groups
                or len(groups[-1]) >= self.max_batch
                or len(groups[-1]) * (n - top) > GROUP_OVERHEAD_PX
            ):
                groups.append([i])
            else:
                groups[-1].append(i)
            top = n
        return groups

    def log_probs(self, batch: list[np.ndarray]) -> list[np.ndarray]:
        """Per-item float32 [T_i, V] natural-log posteriors, unpadded.

        Image items: float32 [H, W] preprocessed lines; audio items: float32 [T, n_mels].
        Items are sorted by length and batched internally; output is in input order.
        """
        out: list[np.ndarray | None] = [None] * len(batch)
        if not batch:
            return []
        axis = 1 if self.kind == "image" else 0
        order = sorted(range(len(batch)), key=lambda i: batch[i].shape[axis])
        with torch.inference_mode():
            for idx in self._groups(order, [batch[i].shape[axis] for i in order]):
                items = [np.asarray(batch[i], dtype=np.float32) for i in idx]
                for i, a in zip(idx, items, strict=False):
                    if a.ndim != 2 or a.shape[axis] == 0:
                        raise ValueError(
                            f"item {i}: expected a non-empty 2-D array, got shape {a.shape}"
                        )
                lens = [a.shape[axis] for a in items]
                if self.kind == "image":
                    h = items[0].shape[0]
                    x = np.zeros((len(items), 1, h, max(max(lens), 2)), np.float32)
                    for j, a in enumerate(items):
                        x[j, 0, :, : a.shape[1]] = a
                else:
                    x = np.zeros((len(items), max(lens), items[0].shape[1]), np.float32)
                    for j, a in enumerate(items):
                        x[j, : a.shape[0]] = a
                lt = torch.tensor(lens)
                y = self.module(torch.from_numpy(x).to(self.device), lt)
                t_out = self.module.output_lengths(lt).clamp(min=1).tolist()
                y = y.float().cpu().numpy()
                for j, i in enumerate(idx):
                    out[i] = np.ascontiguousarray(y[j, : t_out[j]])
        return out  # type: ignore[return-value]


def load_model(path: str | os.PathLike, device: str = "cpu") -> LoadedModel:
    """Load a self-describing checkpoint. Raises ModelLoadError with a one-line message."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"model file not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ModelLoadError(
            f"cannot read model {path}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        ) from None
    if not isinstance(ckpt, dict):
        raise ModelLoadError(f"{path} is not a ctcli checkpoint")
    missing = [k for k in CHECKPOINT_KEYS if k not in ckpt]
    if missing:
        raise ModelLoadError(f"{path} is not a ctcli checkpoint (missing {', '.join(missing)})")
    try:
        module = build_model(ckpt["arch"], **ckpt["dims"])
        module.load_state_dict(ckpt["state_dict"])
    except ModelLoadError:
        raise
    except Exception as e:
        raise ModelLoadError(
            f"{path}: weights do not match architecture {ckpt['arch']!r}: {str(e).splitlines()[0]}"
        ) from None
    try:
        module.to(device).eval()
    except Exception as e:
        raise ModelLoadError(f"cannot move model to {device}: {str(e).splitlines()[0]}") from None
    labels = list(ckpt["alphabet"])
    if not 0 <= int(ckpt["blank"]) < len(labels):
        raise ModelLoadError(f"{path}: blank index out of range")
    meta = {k: v for k, v in ckpt.items() if k != "state_dict"}
    return LoadedModel(
        module=module,
        kind=ckpt["kind"],
        labels=labels,
        blank=int(ckpt["blank"]),
        meta=meta,
        frame_stride=float(ckpt["frame_stride"]),
        device=device,
    )
