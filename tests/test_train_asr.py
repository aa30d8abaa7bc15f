"""Acoustic-model training loop on a tiny synthetic shard: loss falls, the
export is a loadable self-describing checkpoint, resume continues."""

from __future__ import annotations

import numpy as np

from ctcli import train_asr
from ctcli.synth.speechdata import write_shard


def _shard(tmp_path, name):
    rng = np.random.default_rng(0)
    texts = ["ab", "ba", "abc", "cab"]
    feats = []
    for t in texts:  # each letter is a distinct spectral pattern held for 12 frames
        frames = []
        for c in t:
            x = np.full((12, 80), -3.0, np.float32)
            x[:, (ord(c) - 97) * 20 : (ord(c) - 97) * 20 + 20] = 3.0
            frames += [np.full((6, 80), -3.0, np.float32), x]
        feats.append(
            np.concatenate(frames + [np.full((6, 80), -3.0, np.float32)])
            + rng.normal(0, 0.1, (len(t) * 18 + 6, 80)).astype(np.float32)
        )
    d = tmp_path / name
    d.mkdir()
    write_shard(d / "shard-00000.npz", feats, texts, ["test"] * 4)
    return d


def _toy_config(tmp_path, data, **over) -> train_asr.AsrConfig:
    """A tiny network on the toy shard, no augmentation, checkpoint under tmp_path."""
    base = dict(data=str(data), val=str(data), out=str(tmp_path / "m.pt"),
                run_dir=str(tmp_path / "run"), lr=3e-3, warmup=10, conv_channels=4,
                rnn_hidden=32, rnn_layers=1, freq_masks=0, time_masks=0, mel_warp=0.0,
                log_every=10)  # fmt: skip
    return train_asr.AsrConfig(**{**base, **over})


def test_fit_learns_and_exports(tmp_path):
    data = _shard(tmp_path, "train")
    cfg = _toy_config(tmp_path, data, steps=150, frames_per_batch=2000, val_every=150)
    logs: list[str] = []
    m = train_asr.fit(cfg, log=logs.append)
    losses = [float(line.split("loss ")[1].split()[0]) for line in logs if line.startswith("step ")]
    assert losses[-1] < 0.5 * losses[0]
    assert m["val_cer"] < 0.2 and m["step"] == 150  # the toy letters are learnt
    assert m["cer_by_engine"] == {"test": round(m["val_cer"], 4)}  # validation CER per TTS engine
    from ctcli.model import load_model

    lm = load_model(tmp_path / "m.pt")
    assert lm.kind == "audio" and lm.labels == train_asr.ALPHABET
    assert len(lm.meta["features"]["mean"]) == 80
    cfg2 = train_asr.AsrConfig(**{**cfg.__dict__, "steps": 160})
    logs2: list[str] = []
    train_asr.fit(cfg2, resume=True, log=logs2.append)
    assert any("resumed at step 150" in line for line in logs2)


def test_augment_shapes_and_batches():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 80)).astype(np.float32)
    y = train_asr.augment(x, rng, train_asr.AsrConfig())
    assert y.shape == x.shape and np.isfinite(y).all()
    lengths = np.array([100, 2000, 150, 900, 50])
    batches = train_asr.make_batches(lengths, 2000, rng)
    assert sorted(i for b in batches for i in b) == list(range(5))
    assert all(len(b) * max(lengths[b]) <= 2000 or len(b) == 1 for b in batches)


def test_init_warm_starts_a_model_with_a_new_lookahead(tmp_path):
    """--init copies every matching tensor and the feature statistics; a
    look-ahead the source lacks starts as a pass-through, so the warm-started
    model scores (nearly) as well as its source before any update."""
    data = _shard(tmp_path, "train")
    base = dict(data=str(data), val=str(data), frames_per_batch=2000, lr=3e-3, warmup=10,
                conv_channels=4, rnn_hidden=32, rnn_layers=1, freq_masks=0, time_masks=0,
                mel_warp=0.0, log_every=10)  # fmt: skip
    src = train_asr.fit(train_asr.AsrConfig(out=str(tmp_path / "a.pt"), run_dir=str(tmp_path / "a"),
                                            steps=150, val_every=150, **base), log=lambda m: None)  # fmt: skip
    logs: list[str] = []
    warm = train_asr.fit(
        train_asr.AsrConfig(out=str(tmp_path / "b.pt"), run_dir=str(tmp_path / "b"), steps=1,
                            val_every=1, lr=1e-9, init=str(tmp_path / "a.pt"), lookahead=2,
                            **{k: v for k, v in base.items() if k != "lr"}),
        log=logs.append,
    )  # fmt: skip
    assert any("initial weights" in m and "ahead_dw.weight" in m for m in logs)
    assert warm["val_cer"] <= src["val_cer"] + 0.1
    from ctcli.model import load_model

    a, b = load_model(tmp_path / "a.pt"), load_model(tmp_path / "b.pt")
    assert b.module.lookahead == 2 and b.meta["features"]["mean"] == a.meta["features"]["mean"]


def test_two_workers_train_in_step_and_save_once(tmp_path):
    """--workers 2: both processes take their own batches, average their
    gradients and stop together; the first one logs, validates and exports."""
    data = _shard(tmp_path, "train")
    # one toy utterance per batch: 2 steps per pass over the 4 utterances
    cfg = _toy_config(tmp_path, data, steps=120, frames_per_batch=100, val_every=60, workers=2)
    logs: list[str] = []
    m = train_asr.fit(cfg, log=logs.append)
    assert any("2 workers" in line for line in logs)
    assert m["step"] == 120 and m["val_cer"] < 0.3
    assert sum(line.startswith("VAL") for line in logs) == 2
    from ctcli.model import load_model

    assert load_model(tmp_path / "m.pt").kind == "audio"
    logs2: list[str] = []
    train_asr.fit(train_asr.AsrConfig(**{**cfg.__dict__, "steps": 130}), resume=True,
                  log=logs2.append)  # fmt: skip
    assert any("resumed at step 120" in line for line in logs2)


def test_more_workers_than_batches_is_refused(tmp_path):
    import pytest

    data = _shard(tmp_path, "train")
    cfg = train_asr.AsrConfig(data=str(data), val=str(data), out=str(tmp_path / "m.pt"),
                              run_dir=str(tmp_path / "run"), steps=5, frames_per_batch=100_000,
                              conv_channels=4, rnn_hidden=8, rnn_layers=1, workers=2)  # fmt: skip
    with pytest.raises(ValueError, match="frames-per-batch"):
        train_asr.fit(cfg, log=lambda m: None)


def test_ctcli_train_speech_runs_the_trainer(tmp_path, capsys):
    """`ctcli train-speech` is the trainer's command line: its own --help, and a
    run that logs on stderr only and writes the checkpoint."""
    import pytest

    from ctcli.cli import main

    with pytest.raises(SystemExit) as e:
        main(["train-speech", "--help"])
    assert e.value.code == 0 and "--workers" in capsys.readouterr().out
    data = _shard(tmp_path, "train")
    args = ["--data", str(data), "--val", str(data), "--out", str(tmp_path / "m.pt"),
            "--run-dir", str(tmp_path / "run"), "--steps", "4", "--frames-per-batch", "2000",
            "--conv-channels", "4", "--rnn-hidden", "8", "--rnn-layers", "1", "--val-every", "4",
            "--log-every", "2"]  # fmt: skip
    with pytest.raises(SystemExit) as e:
        main(["train-speech", *args])
    out = capsys.readouterr()
    assert e.value.code == 0 and out.out == ""
    assert "done at step 4" in out.err and (tmp_path / "m.pt").is_file()


def test_conformer_learns_exports_and_streams(tmp_path):
    """--arch asr_conformer: the chunk-attention conformer learns the toy
    letters, exports a checkpoint that loads and streams exactly as offline."""
    from ctcli import stream
    from ctcli.model import load_model

    data = _shard(tmp_path, "train")
    cfg = _toy_config(tmp_path, data, arch="asr_conformer", rnn_hidden=32, rnn_layers=2,
                      heads=2, chunk=4, left_chunks=1, steps=150, frames_per_batch=2000,
                      val_every=150)  # fmt: skip
    m = train_asr.fit(cfg, log=lambda _: None)
    assert m["val_cer"] < 0.2 and m["step"] == 150
    lm = load_model(tmp_path / "m.pt")
    assert lm.meta["arch"] == "asr_conformer" and lm.module.chunk == 4
    x = np.random.default_rng(1).standard_normal((157, 80)).astype(np.float32)
    s = stream.StreamingAcoustic(lm)
    got = np.concatenate([s.push(x[i : i + 13]) for i in range(0, 157, 13)] + [s.finish()])
    want = lm.log_probs([x])[0]
    assert got.shape == want.shape and np.abs(got - want).max() < 1e-4


def test_unknown_arch_is_refused(tmp_path):
    import pytest

    data = _shard(tmp_path, "train")
    with pytest.raises(ValueError, match="unknown --arch"):
        train_asr.fit(_toy_config(tmp_path, data, arch="lstm", steps=1), log=lambda _: None)


def test_upsampled_head_warm_starts_with_the_same_outputs(tmp_path):
    """--upsample 2 --init from an upsample-1 model: the head is tiled, so each
    source frame comes out twice in a row (greedy transcripts unchanged);
    training goes on from there and exports a 20-ms frame stride."""
    import torch

    from ctcli.model import build_model, load_model

    data = _shard(tmp_path, "train")
    train_asr.fit(_toy_config(tmp_path, data, steps=60, frames_per_batch=2000, val_every=60),
                  log=lambda _: None)  # fmt: skip
    src = load_model(tmp_path / "m.pt")
    tiled = build_model("asr_conv_gru", **{**src.meta["dims"], "upsample": 2}).eval()
    tiled.load_state_dict(
        {k: v for k, v in src.module.state_dict().items() if not k.startswith("head.")},
        strict=False,
    )
    assert all(train_asr._tile_head(tiled, src.module, k) for k in ("head.weight", "head.bias"))
    x = torch.randn(1, 90, 80)
    with torch.no_grad():
        a, b = src.module(x), tiled(x)
    assert b.shape[1] == 2 * a.shape[1]
    assert torch.equal(b[:, 0::2], a) and torch.equal(b[:, 1::2], a)

    cfg = _toy_config(tmp_path, data, steps=20, frames_per_batch=2000, val_every=20, upsample=2,
                      init=str(tmp_path / "m.pt"), out=str(tmp_path / "u.pt"),
                      run_dir=str(tmp_path / "run-u"))  # fmt: skip
    logs: list[str] = []
    train_asr.fit(cfg, log=logs.append)
    assert any("new: none" in line for line in logs)  # the head was tiled, not left fresh
    up = load_model(tmp_path / "u.pt")
    assert up.module.upsample == 2 and up.frame_stride == src.frame_stride / 2


def test_time_budget_decays_the_lr_and_stops(tmp_path):
    import math

    cfg = train_asr.AsrConfig(lr=1e-3, warmup=10, steps=1000, minutes=2.0)
    assert train_asr._lr_now(5, 100.0, cfg) == train_asr._lr_at(5, cfg)  # warm-up by steps
    half = 1e-3 * (0.02 + 0.98 * 0.5)
    assert math.isclose(train_asr._lr_now(20, 60.0, cfg), half)  # half the time: mid-cosine
    assert math.isclose(train_asr._lr_now(505, 1.0, cfg), half)  # or half the steps
    assert math.isclose(train_asr._lr_now(20, 500.0, cfg), 1e-3 * 0.02)  # past the budget
    no_budget = train_asr.AsrConfig(lr=1e-3, warmup=10, steps=1000)
    assert train_asr._lr_now(300, 1e9, no_budget) == train_asr._lr_at(300, no_budget)

    data = _shard(tmp_path, "train")
    cfg = _toy_config(tmp_path, data, steps=10**6, frames_per_batch=2000, val_every=10**6,
                      minutes=0.03)  # fmt: skip
    logs: list[str] = []
    m = train_asr.fit(cfg, log=logs.append)
    assert 0 < m["step"] < 10**6 and "val_cer" in m  # stopped by the clock, validated
    assert (tmp_path / "m.pt").is_file() and any(line.startswith("done at step") for line in logs)
    logs2: list[str] = []
    train_asr.fit(cfg, resume=True, log=logs2.append)  # the budget is spent: nothing more
    assert f"done at step {m['step']};" in logs2[-1]


def test_time_budget_needs_one_worker(tmp_path):
    import pytest

    from ctcli.errors import UsageError

    data = _shard(tmp_path, "train")
    with pytest.raises(UsageError, match="one worker"):
        train_asr.fit(_toy_config(tmp_path, data, minutes=1.0, workers=2), log=lambda _: None)


def test_dry_twins_load_beside_their_shards(tmp_path):
    import pytest

    data = _shard(tmp_path, "train")
    dry = _shard(tmp_path, "dry")
    write_shard(data / "shard-00001.npz", [np.zeros((30, 80), np.float32)], ["a"], ["test"])
    s = train_asr.Shards(data, dry)
    assert len(s) == 5 and [d is None for d in s.dry] == [False] * 4 + [True]
    assert all(
        np.array_equal(a, b) for a, b in zip(s.dry[:4], train_asr.Shards(dry).feats, strict=True)
    )
    cfg = train_asr.AsrConfig(p_dry=1.0)
    rng = np.random.default_rng(0)
    assert np.array_equal(train_asr._pick(s, 0, rng, cfg), s.dry[0].astype(np.float32))
    assert np.array_equal(train_asr._pick(s, 4, rng, cfg), s.feats[4].astype(np.float32))
    state = rng.bit_generator.state
    train_asr._pick(s, 0, rng, train_asr.AsrConfig(p_dry=0.0))
    assert rng.bit_generator.state == state  # no draw: runs without twins are unchanged
    write_shard(dry / "shard-00001.npz", [np.zeros((30, 80), np.float32)], ["b"], ["test"])
    with pytest.raises(ValueError, match="not the twin"):
        train_asr.Shards(data, dry)


def test_training_reads_the_dry_twins(tmp_path):
    """Wet shards of pure noise, dry twins with the letters: with p_dry 1 the
    model learns the letters, so the trainer takes the twins."""
    dry = _shard(tmp_path, "dry")
    wet = tmp_path / "wet"
    wet.mkdir()
    clean = train_asr.Shards(dry)
    rng = np.random.default_rng(1)
    noise = [rng.normal(0, 3, f.shape).astype(np.float32) for f in clean.feats]
    write_shard(wet / "shard-00000.npz", noise, clean.texts, ["test"] * 4)
    cfg = _toy_config(tmp_path, wet, val=str(dry), steps=250, frames_per_batch=2000,
                      val_every=250, dry_data=str(dry), p_dry=1.0)  # fmt: skip
    assert train_asr.fit(cfg, log=lambda _: None)["val_cer"] < 0.2
    cfg = train_asr.AsrConfig(**{**cfg.__dict__, "p_dry": 0.0, "run_dir": str(tmp_path / "r0")})
    assert train_asr.fit(cfg, log=lambda _: None)["val_cer"] > 0.5  # the noise teaches nothing


def test_dry_options_are_checked(tmp_path):
    import pytest

    from ctcli.errors import UsageError

    data = _shard(tmp_path, "train")
    with pytest.raises(UsageError, match="needs --dry-data"):
        train_asr.fit(_toy_config(tmp_path, data, p_dry=0.5), log=lambda _: None)
    with pytest.raises(UsageError, match="between 0 and 1"):
        train_asr.fit(_toy_config(tmp_path, data, p_dry=1.5, dry_data=str(data)), log=print)


def test_prefetching_trains_the_same_weights(tmp_path):
    """Batches built ahead in a thread are the same batches, with the same
    augmentation draws: the trained weights are identical."""
    import torch

    data = _shard(tmp_path, "train")
    out = {}
    for depth in (0, 2):
        cfg = _toy_config(tmp_path / str(depth), data, steps=30, frames_per_batch=200,
                          val_every=30, freq_masks=2, time_masks=2, mel_warp=0.1,
                          prefetch=depth)  # fmt: skip
        (tmp_path / str(depth)).mkdir()
        logs: list[str] = []
        train_asr.fit(cfg, log=logs.append)
        assert any(("2 batches built ahead" in line) == (depth == 2) for line in logs)
        out[depth] = torch.load(tmp_path / str(depth) / "m.pt", weights_only=False)["state_dict"]
    assert out[0].keys() == out[2].keys()
    for k in out[0]:
        assert torch.equal(out[0][k], out[2][k]), k


def test_prefetch_depth_defaults_to_the_gpu_only():
    assert train_asr.prefetch_depth(-1, "cuda") == 2
    assert train_asr.prefetch_depth(-1, "cuda:1") == 2
    assert train_asr.prefetch_depth(-1, "cpu") == 0
    assert train_asr.prefetch_depth(3, "cpu") == 3 and train_asr.prefetch_depth(0, "cuda") == 0


def test_warm_start_with_a_backward_layer_and_running_mean(tmp_path):
    """--back-chunk adds a layer whose residual starts at zero, so the warm
    start reads exactly as its source before any update; --cmn-prior lands
    in the checkpoint's features, where every front end reads it."""
    import torch

    from ctcli.audio import normalize
    from ctcli.model import load_model

    data = _shard(tmp_path, "train")
    train_asr.fit(_toy_config(tmp_path, data, steps=20, frames_per_batch=2000, val_every=20,
                              out=str(tmp_path / "a.pt"), run_dir=str(tmp_path / "a")),
                  log=lambda m: None)  # fmt: skip
    logs: list[str] = []
    train_asr.fit(_toy_config(tmp_path, data, steps=1, frames_per_batch=2000, val_every=1,
                              lr=1e-12, warmup=1, back_chunk=3, cmn_prior=50.0,
                              init=str(tmp_path / "a.pt"), out=str(tmp_path / "b.pt"),
                              run_dir=str(tmp_path / "b")), log=logs.append)  # fmt: skip
    assert any("initial weights" in m and "back_rnn.weight_ih_l0" in m for m in logs)
    a, b = load_model(tmp_path / "a.pt"), load_model(tmp_path / "b.pt")
    assert b.module.back_chunk == 3 and b.meta["dims"]["back_chunk"] == 3
    assert b.meta["features"]["cmn_prior"] == 50.0 and "cmn_prior" not in a.meta["features"]
    x = torch.from_numpy(normalize(np.random.default_rng(1).normal(size=(90, 80)).astype(np.float32),
                                   a.meta["features"]))[None]  # fmt: skip
    with torch.no_grad():
        assert torch.allclose(a.module(x), b.module(x), atol=1e-4)


def test_engine_weights_repeat_an_engines_utterances_each_pass(tmp_path):
    import pytest

    from ctcli.errors import UsageError

    voices = ["flite:awb", "kokoro:jm_kumo", "espeak-ng:en-us", "kokoro:jf_alpha", ""]
    assert train_asr.pass_indices(voices, {}).tolist() == [0, 1, 2, 3, 4]
    assert train_asr.pass_indices(voices, {"kokoro": 3}).tolist() == [0, 1, 1, 1, 2, 3, 3, 3, 4]
    assert train_asr.parse_engine_weights("kokoro=2, piper=3") == {"kokoro": 2, "piper": 3}
    assert train_asr.parse_engine_weights("") == {}
    for bad in ("kokoro", "kokoro=0", "kokoro=1.5", "=2"):
        with pytest.raises(UsageError, match="engine-weight"):
            train_asr.parse_engine_weights(bad)
    data = _shard(tmp_path, "train")
    with pytest.raises(UsageError, match="engine-weight"):
        train_asr.fit(_toy_config(tmp_path, data, engine_weight="kokoro=x"), log=lambda _: None)


def test_engine_weight_option_repeats_add_up(monkeypatch):
    seen = []
    monkeypatch.setattr(train_asr, "fit", lambda cfg, resume, log: seen.append(cfg.engine_weight))
    train_asr.main(["--engine-weight", "kokoro=2", "--engine-weight", "kokoro-mix=3,piper=2"])
    train_asr.main([])
    assert seen == ["kokoro=2,kokoro-mix=3,piper=2", ""]
    assert train_asr.parse_engine_weights(seen[0]) == {"kokoro": 2, "kokoro-mix": 3, "piper": 2}


def test_engine_weight_changes_only_how_often_an_utterance_is_seen(tmp_path):
    """A weight for an engine the data does not hold trains exactly as no
    weight (same batches, same draws); a weight on the data's engine repeats
    its utterances, so a pass holds more batches."""
    data = _shard(tmp_path, "train")
    logs: dict[str, list[str]] = {}
    out = {}
    for name, w in (("none", ""), ("other", "kokoro=2"), ("test", "test=3")):
        cfg = _toy_config(tmp_path, data, steps=12, log_every=1, engine_weight=w,
                          out=str(tmp_path / f"{name}.pt"), run_dir=str(tmp_path / name))  # fmt: skip
        logs[name] = []
        out[name] = train_asr.fit(cfg, log=logs[name].append)
    import torch

    sd = {k: torch.load(tmp_path / f"{k}.pt", weights_only=True)["state_dict"] for k in out}
    assert all(torch.equal(sd["none"][k], sd["other"][k]) for k in sd["none"])
    assert any(not torch.equal(sd["none"][k], sd["test"][k]) for k in sd["none"])


def test_keep_last_exports_the_final_weights(tmp_path, monkeypatch):
    """Validation that only gets worse: `best` keeps the first export, `last`
    exports the final weights, also when a finished run is resumed."""
    import pytest
    import torch

    from ctcli.errors import UsageError

    data = _shard(tmp_path, "train")
    calls = []

    def worse(*a, **k):
        calls.append(1)
        return {"val_wer": 0.1 * len(calls), "val_cer": 0.1}

    monkeypatch.setattr(train_asr, "validate", worse)
    for keep in ("best", "last"):
        cfg = _toy_config(tmp_path, data, steps=20, val_every=10, keep=keep,
                          out=str(tmp_path / f"{keep}.pt"), run_dir=str(tmp_path / keep))  # fmt: skip
        logs: list[str] = []
        train_asr.fit(cfg, log=logs.append)
        step = torch.load(tmp_path / f"{keep}.pt", weights_only=True)["training"]["step"]
        assert step == (10 if keep == "best" else 20)
    n = len(calls)
    (tmp_path / "last.pt").unlink()
    logs = []
    train_asr.fit(cfg, resume=True, log=logs.append)  # over already: validates once, exports
    assert len(calls) == n + 1 and any("exported the last weights (step 20)" in x for x in logs)
    assert torch.load(tmp_path / "last.pt", weights_only=True)["training"]["step"] == 20
    with pytest.raises(UsageError, match="--keep"):
        train_asr.fit(_toy_config(tmp_path, data, keep="final"), log=lambda _: None)
