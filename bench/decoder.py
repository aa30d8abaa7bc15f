"""Benchmark: ctcli's CTC decoder against peer decoders, in one run.

    .venv/bin/python bench/decoder.py            # full run (tunes once, cached)
    .venv/bin/python bench/decoder.py --quick    # fewer sentences

Data (built once, cached under bench/.cache/decoder/):
  * Text: Jane Austen's six novels (public domain) from Debian's
    r-cran-janeaustenr package (fetched with `apt-get download`, unpacked,
    no R needed). The LM is trained on five novels; the test and dev
    sentences come from the sixth (Persuasion), which the LM never saw.
  * LM: a word 4-gram with interpolated modified Kneser-Ney smoothing,
    written as ARPA by the small estimator in this file (no lmplz here).
  * Posteriors: simulated CTC output at 50 frames per second: one peaky
    spike per letter with blanks around it, realistic confusions (the top
    label is a similar-sounding letter ~8% of the time, the true one second),
    weak spikes (deletions), blank frames leaking a little mass. Greedy CER
    is about 11%.

Contenders, each single-threaded, CPU time per utterance (time.process_time):
  ctcli (this venv); pyctcdecode, ctc-beam-decoder, flashlight-text lexicon
  and lexicon-free decoders (bench/.venv-decoder, made by
  bench/setup_decoder_peers.sh; each runs in a worker subprocess of this
  script). alpha/beta are tuned per contender on dev sentences at beam 32
  (grid below, cached in bench/.cache/decoder/tuned.json; --retune redoes
  it). Each contender keeps its own pruning defaults. flashlight: log_add
  (sum over alignments, better WER here), alpha scaled by ln 10 (its KenLM
  scores are log10), and one trailing "|" frame for the lexicon decoder,
  whose spellings end in "|" (else it drops the last word). Its lexicon is
  the LM's vocabulary, so it cannot output out-of-vocabulary words.
  Timings are medians over sentences of one pass after one warm-up decode;
  on a shared machine, compare ratios rather than absolute numbers.
Reported: median ms of CPU per second of audio, WER, CER, and ctcli's speed
ratio (peer time / ctcli time: > 1 means ctcli is faster).
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import random
import re
import statistics
import struct
import subprocess
import sys
import time
import zlib
from collections import Counter, defaultdict
from pathlib import Path

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CACHE = HERE / ".cache" / "decoder"
PEER_PY = HERE / ".venv-decoder" / "bin" / "python"
LABELS = ["", " ", *"abcdefghijklmnopqrstuvwxyz", "'"]
FPS = 50  # frames per second of the simulated acoustic model
NOVELS = [
    "emma",
    "mansfieldpark",
    "northangerabbey",
    "persuasion",
    "prideprejudice",
    "sensesensibility",
]
HELD_OUT = "persuasion"
BEAMS = (8, 32, 128)

# ---------------------------------------------------------------------------
# Text
# ---------------------------------------------------------------------------


def _austen_lines() -> dict[str, list[str]]:
    """The six novels as lists of lines, from the Debian package's R data."""
    out = CACHE / "austen.json.gz"
    if out.exists():
        return json.loads(gzip.decompress(out.read_bytes()))
    CACHE.mkdir(parents=True, exist_ok=True)
    work = CACHE / "deb"
    work.mkdir(exist_ok=True)
    debs = list(work.glob("r-cran-janeaustenr_*.deb"))
    if not debs:
        subprocess.run(["apt-get", "download", "r-cran-janeaustenr"], cwd=work, check=True)
        debs = list(work.glob("r-cran-janeaustenr_*.deb"))
    subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(work / "x")], check=True)
    rdb = next((work / "x").rglob("janeaustenr/data/Rdata.rdb")).read_bytes()
    rdx = gzip.decompress(next((work / "x").rglob("janeaustenr/data/Rdata.rdx")).read_bytes())
    names = [n.decode() for n in re.findall(rb"[a-z]{4,}", rdx) if n.decode() in NOVELS]
    blobs = []
    off = 0
    while off < len(rdb):
        d = zlib.decompressobj()
        blobs.append(d.decompress(rdb[off + 4 :]))
        off = len(rdb) - len(d.unused_data)
    books = {}
    for name, blob in zip(names, blobs, strict=False):
        books[name] = _r_strings(blob)
    out.write_bytes(gzip.compress(json.dumps(books).encode()))
    return books


def _r_strings(blob: bytes) -> list[str]:
    """Strings of the first character vector (STRSXP) in an R XDR serialisation."""
    i = blob.index(b"UTF-8") + 5
    while struct.unpack(">i", blob[i : i + 4])[0] & 0xFF != 16:
        i += 4
    n = struct.unpack(">i", blob[i + 4 : i + 8])[0]
    i += 8
    out = []
    for _ in range(n):
        ln = struct.unpack(">i", blob[i + 4 : i + 8])[0]
        i += 8
        if ln < 0:
            out.append("")
            continue
        out.append(blob[i : i + ln].decode("utf-8", "replace"))
        i += ln
    return out


def normalise(s: str) -> str:
    s = s.lower().replace("\u2019", "'").replace("`", "'")
    s = re.sub(r"[^a-z' ]+", " ", s)
    s = re.sub(r"(^|\s)'+|'+(\s|$)", " ", s)  # quotes, not apostrophes
    return " ".join(s.split())


def sentences(lines: list[str]) -> list[str]:
    text = " ".join(line.strip() for line in lines)
    text = re.sub(r"CHAPTER [IVXLC0-9]+\.?", " ", text)
    text = re.sub(r"\b(Mr|Mrs|Dr|St|Esq)\.", r"\1", text)
    out = []
    for sent in re.split(r"(?<=[.!?;])\s+", text):
        s = normalise(sent)
        if s:
            out.append(s)
    return out


# ---------------------------------------------------------------------------
# Word 4-gram, interpolated modified Kneser-Ney, ARPA
# ---------------------------------------------------------------------------


def build_kn_arpa(sents: list[str], path: Path, order: int = 4) -> None:
    """Interpolated modified Kneser-Ney (Chen & Goodman) written as ARPA."""
    counts: list[Counter] = [Counter() for _ in range(order + 1)]  # counts[n][ngram]
    for s in sents:
        toks = ("<s>", *s.split(), "</s>")
        for n in range(1, order + 1):
            for i in range(len(toks) - n + 1):
                counts[n][toks[i : i + n]] += 1
    # adjusted counts: continuation counts for lower orders (except <s>-initial)
    adj: list[dict] = [dict() for _ in range(order + 1)]
    adj[order] = dict(counts[order])
    for n in range(order - 1, 0, -1):
        cont: Counter = Counter()
        for g in counts[n + 1]:
            cont[g[1:]] += 1
        a = {}
        for g, c in counts[n].items():
            a[g] = c if g[0] == "<s>" else cont.get(g, 0)
        a = {g: c for g, c in a.items() if c > 0}
        adj[n] = a
    adj[1].setdefault(("<s>",), 0)
    # discounts per order
    disc = [None] * (order + 1)
    for n in range(1, order + 1):
        cc = Counter(c for c in adj[n].values() if 1 <= c <= 4)
        n1, n2, n3, n4 = (max(cc[k], 1) for k in (1, 2, 3, 4))
        y = n1 / (n1 + 2 * n2)
        disc[n] = (
            0.0,
            max(0.05, 1 - 2 * y * n2 / n1),
            max(0.05, 2 - 3 * y * n3 / n2),
            max(0.05, 3 - 4 * y * n4 / n3),
        )
    # per context: total adjusted count and the counts of types with 1, 2, 3+
    prob: list[dict] = [dict() for _ in range(order + 1)]
    bow: list[dict] = [dict() for _ in range(order + 1)]
    vocab = [g[0] for g in adj[1]]
    V = len(vocab) + 1  # + <unk>
    for n in range(1, order + 1):
        tot: dict = defaultdict(float)
        nk: dict = defaultdict(lambda: [0, 0, 0])
        for g, c in adj[n].items():
            h = g[:-1]
            tot[h] += c
            nk[h][min(c, 3) - 1] += 1
        D = disc[n]
        gamma = {}
        for h, t in tot.items():
            k = nk[h]
            gamma[h] = (D[1] * k[0] + D[2] * k[1] + D[3] * k[2]) / t if t > 0 else 1.0
        for g, c in adj[n].items():
            h = g[:-1]
            t = tot[h]
            p = max(c - D[min(c, 3)], 0.0) / t if t > 0 else 0.0
            lower = 1.0 / V if n == 1 else _p_lower(prob, g[1:], bow)
            prob[n][g] = p + gamma[h] * lower
        if n >= 2:
            for h, gm in gamma.items():
                bow[n - 1][h] = gm
        else:
            unk_mass = gamma[()] / V
    prob[1][("<unk>",)] = unk_mass
    prob[1][("<s>",)] = 0.0
    with open(path, "w", encoding="utf-8") as f:
        f.write("\\data\\\n")
        for n in range(1, order + 1):
            f.write(f"ngram {n}={len(prob[n])}\n")
        for n in range(1, order + 1):
            f.write(f"\n\\{n}-grams:\n")
            for g, p in prob[n].items():
                lp = -99.0 if p <= 0 else math.log10(p)
                line = f"{lp:.6f}\t{' '.join(g)}"
                if n < order and g in bow[n]:
                    line += f"\t{math.log10(max(bow[n][g], 1e-99)):.6f}"
                f.write(line + "\n")
        f.write("\n\\end\\\n")


def _p_lower(prob, g, bow) -> float:
    """Interpolated probability of the n-gram g from the (already built) lower orders."""
    n = len(g)
    if g in prob[n]:
        return prob[n][g]
    if n == 1:
        return prob[1].get(("<unk>",), 1e-7)
    return bow[n - 1].get(g[:-1], 1.0) * _p_lower(prob, g[1:], bow)


# ---------------------------------------------------------------------------
# Simulated CTC posteriors
# ---------------------------------------------------------------------------
GROUPS = ["aeiouy", "bp", "dt", "gkcq", "mn", "szc", "fv", "lr", "wv", "jg", "xks", "hf", "'s"]


def _confusions() -> dict[str, str]:
    conf: dict[str, set] = defaultdict(set)
    for g in GROUPS:
        for a in g:
            conf[a] |= set(g) - {a}
    return {k: "".join(sorted(v)) for k, v in conf.items()}


CONF = _confusions()
P_CONFUSE = 0.11  # top label is a confusable letter, the true one second
P_WEAK = 0.025  # the spike is weak: blank wins, the letter second
P_SPACE_WEAK = 0.03
P_TRANSITION = 0.5  # a blank-dominated onset / offset frame with letter mass around a spike
# --soft: a stress variant with much less peaky posteriors (more mass off the blank)
SIM = {"soft": False}


def _sim(normal, soft):
    return soft if SIM["soft"] else normal


def npz_path(n_test: int, n_dev: int) -> Path:
    return CACHE / f"posteriors-{n_test}-{n_dev}{'-soft' if SIM['soft'] else ''}.npz"


def simulate(text: str, rng: np.random.Generator) -> np.ndarray:
    V = len(LABELS)

    def transition(spike, top, true):
        q = np.zeros(V)
        q[0] = rng.uniform(0.5, 0.9)
        share = (1 - q[0]) * rng.uniform(0.6, 0.9)
        q[top] += share * 0.6
        q[true] += share * 0.4
        q[1:] += rng.dirichlet(np.full(V - 1, 0.5)) * (1 - q.sum())
        return q

    idx = {c: i for i, c in enumerate(LABELS) if i}
    rows = []

    def blank_frames(k, near):
        for _ in range(k):
            p = np.zeros(V)
            rest = 10 ** rng.uniform(*_sim((-3.8, -1.3), (-2.5, -0.7)))
            p[0] = 1 - rest
            others = rng.dirichlet(np.full(V - 1, 0.3)) * rest * 0.5
            p[1:] += others
            p[near] += rest * 0.5
            rows.append(p)

    blank_frames(int(rng.integers(2, 10)), idx[text[0]])
    for ci, ch in enumerate(text):
        true = idx[ch]
        p = np.zeros(V)
        r = rng.random()
        weak_p = P_SPACE_WEAK if ch == " " else P_WEAK
        if r < weak_p:
            p[0] = rng.uniform(0.5, 0.8)
            p[true] = (1 - p[0]) * rng.uniform(0.6, 0.9)
        elif r < weak_p + P_CONFUSE and ch in CONF:
            other = idx[CONF[ch][int(rng.integers(len(CONF[ch])))]]
            p[other] = rng.uniform(0.4, 0.75)
            p[true] = (1 - p[other]) * rng.uniform(0.5, 0.9)
        else:
            p[true] = rng.uniform(*_sim((0.5, 0.97), (0.4, 0.9)))
            if ch in CONF:
                other = idx[CONF[ch][int(rng.integers(len(CONF[ch])))]]
                p[other] = (1 - p[true]) * rng.uniform(0.2, 0.6)
        rest = 1 - p.sum()
        p[0] += rest * 0.6
        p[1:] += rng.dirichlet(np.full(V - 1, 0.3)) * rest * 0.4
        top = int(np.argmax(p[1:])) + 1
        if rng.random() < _sim(P_TRANSITION, 0.9):  # onset: blank still wins, the letter rising
            rows.append(transition(p, top, true))
        rows.append(p)
        if rng.random() < 0.2:  # a second spike frame of the same letter
            rows.append(p.copy())
        if rng.random() < _sim(P_TRANSITION, 0.9):  # offset
            rows.append(transition(p, top, true))
        nxt = idx[text[ci + 1]] if ci + 1 < len(text) else true
        blank_frames(int(rng.integers(1, 4)), nxt)
    blank_frames(int(rng.integers(2, 10)), idx[text[-1]])
    p = np.maximum(np.array(rows), 1e-9)
    p /= p.sum(1, keepdims=True)
    return np.log(p).astype(np.float32)


# ---------------------------------------------------------------------------
# Data set
# ---------------------------------------------------------------------------


def dataset(n_test: int, n_dev: int):
    CACHE.mkdir(parents=True, exist_ok=True)
    books = _austen_lines()
    lm_path = CACHE / "austen-4gram.arpa"
    if not lm_path.exists():
        train = [s for b in NOVELS if b != HELD_OUT for s in sentences(books[b])]
        t = time.time()
        build_kn_arpa(train, lm_path)
        print(
            f"# built {lm_path.name} from {len(train)} sentences in {time.time() - t:.0f}s",
            file=sys.stderr,
        )
    npz = npz_path(n_test, n_dev)
    if not npz.exists():
        held = [s for s in sentences(books[HELD_OUT]) if 5 <= len(s.split()) <= 30]
        random.Random(0).shuffle(held)
        texts = held[: n_test + n_dev]
        rng = np.random.default_rng(0)
        arrays = {f"lp{i}": simulate(t, rng) for i, t in enumerate(texts)}
        np.savez_compressed(npz, texts=np.array(texts), **arrays)
    z = np.load(npz)
    texts = [str(t) for t in z["texts"]]
    lps = [z[f"lp{i}"] for i in range(len(texts))]
    return lm_path, texts[:n_test], lps[:n_test], texts[n_test:], lps[n_test:]


# ---------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------


def edit_distance(a, b) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def wer_cer(refs, hyps) -> tuple[float, float]:
    we = sum(edit_distance(r.split(), h.split()) for r, h in zip(refs, hyps, strict=True))
    ce = sum(edit_distance(r, " ".join(h.split())) for r, h in zip(refs, hyps, strict=True))
    return we / sum(len(r.split()) for r in refs), ce / sum(len(r) for r in refs)


# ---------------------------------------------------------------------------
# Contenders: each is make(lm, alpha, beta, beam) -> decode(lp) -> text
# ---------------------------------------------------------------------------


def make_ctcli(lm, alpha, beta, beam):
    sys.path.insert(0, str(REPO))
    from ctcli.decoder import build_decoder

    dec = build_decoder(LABELS, lm=lm, alpha=alpha, beta=beta, beam_width=beam)
    return lambda lp: dec.decode(lp).text


def make_pyctcdecode(lm, alpha, beta, beam):
    import logging

    logging.getLogger("pyctcdecode").setLevel(logging.ERROR)
    from pyctcdecode import build_ctcdecoder

    kw = {} if lm is None else {"kenlm_model_path": str(lm), "alpha": alpha, "beta": beta}
    dec = build_ctcdecoder(LABELS, **kw)
    return lambda lp: dec.decode(lp, beam_width=beam)


def make_ctc_beam_decoder(lm, alpha, beta, beam):
    from ctc_beam_decoder import build_ctcdecoder

    kw = {} if lm is None else {"kenlm_model_path": str(lm), "alpha": alpha, "beta": beta}
    dec = build_ctcdecoder(LABELS, **kw)
    return lambda lp: dec.decode(lp, beam_width=beam)


def _fl_tokens():
    from flashlight.lib.text.dictionary import Dictionary

    td = Dictionary()
    for lab in LABELS:
        td.add_entry("<b>" if lab == "" else "|" if lab == " " else lab)
    return td


def _fl_text(tokens, blank, sil) -> str:
    out, prev = [], None
    for t in tokens:
        if t != prev and t != blank:
            out.append(" " if t == sil else LABELS[t])
        prev = t
    return " ".join("".join(out).split())


def _flashlight_lexicon(lm, alpha, beta, beam, vocab):
    from flashlight.lib.text.decoder import (
        CriterionType,
        KenLM,
        LexiconDecoder,
        LexiconDecoderOptions,
        SmearingMode,
        Trie,
        ZeroLM,
    )
    from flashlight.lib.text.dictionary import create_word_dict

    td = _fl_tokens()
    sil, blank = td.get_index("|"), td.get_index("<b>")
    lexicon = {w: [list(w) + ["|"]] for w in vocab if re.fullmatch(r"[a-z']+", w)}
    wd = create_word_dict({**lexicon, "<unk>": [["|"]]})
    flm = KenLM(str(lm), wd) if lm is not None else ZeroLM()
    trie = Trie(td.index_size(), sil)
    start = flm.start(False)
    for w, spellings in lexicon.items():
        wi = wd.get_index(w)
        _, score = flm.score(start, wi)
        for sp in spellings:
            trie.insert([td.get_index(t) for t in sp], wi, score)
    trie.smear(SmearingMode.MAX)
    opts = LexiconDecoderOptions(
        beam_size=beam,
        beam_size_token=len(LABELS),
        beam_threshold=25.0,
        lm_weight=alpha if lm is not None else 0.0,
        word_score=beta,
        unk_score=-math.inf,
        sil_score=0.0,
        log_add=True,
        criterion_type=CriterionType.CTC,
    )  # (log_add=True measured better than False here: WER 3.8% vs 4.6%)
    dec = LexiconDecoder(opts, trie, flm, sil, blank, wd.get_index("<unk>"), [], False)

    sil_frame = np.full((1, len(LABELS)), math.log(1e-6 / (len(LABELS) - 1)), np.float32)
    sil_frame[0, sil] = math.log1p(-1e-6)

    def run(lp):
        # its lexicon spells words with a trailing "|": append one "|" frame so
        # the last word is closed (the simulated audio ends without a space)
        x = np.ascontiguousarray(np.concatenate([lp, sil_frame]), dtype=np.float32)
        r = dec.decode(x.ctypes.data, x.shape[0], x.shape[1])[0]
        return " ".join(wd.get_entry(w) for w in r.words if w >= 0)

    return run


def make_flashlight_lexfree(lm, alpha, beta, beam):
    from flashlight.lib.text.decoder import (
        CriterionType,
        LexiconFreeDecoder,
        LexiconFreeDecoderOptions,
        ZeroLM,
    )

    td = _fl_tokens()
    sil, blank = td.get_index("|"), td.get_index("<b>")
    opts = LexiconFreeDecoderOptions(
        beam_size=beam,
        beam_size_token=len(LABELS),
        beam_threshold=25.0,
        lm_weight=0.0,
        sil_score=0.0,
        log_add=True,
        criterion_type=CriterionType.CTC,
    )  # (log_add: sum over alignments, like a prefix beam search)
    dec = LexiconFreeDecoder(opts, ZeroLM(), sil, blank, [])

    def run(lp):
        x = np.ascontiguousarray(lp, dtype=np.float32)
        r = dec.decode(x.ctypes.data, x.shape[0], x.shape[1])[0]
        return _fl_text(r.tokens, blank, sil)

    return run


def arpa_vocab(lm) -> list[str]:
    out = []
    with open(lm, encoding="utf-8") as f:
        on = False
        for line in f:
            s = line.strip()
            if s == "\\1-grams:":
                on = True
                continue
            if on:
                if not s:
                    continue
                if s.startswith("\\"):
                    break
                w = s.split("\t")[1]
                if w not in ("<s>", "</s>", "<unk>"):
                    out.append(w)
    return out


# name -> (factory, runs where, supports LM, supports no-LM, alpha grid, beta grid)
ALPHAS_LN = (0.2, 0.3, 0.5, 0.8)  # LM weight on natural-log scores
BETAS = (0.5, 1.5, 3.0, 4.5)  # word bonus
CONTENDERS = {
    "ctcli": ("main", True, True),
    "pyctcdecode": ("peer", True, True),
    "ctc-beam-decoder": ("peer", True, True),
    "flashlight-lexicon": ("peer", True, True),
    "flashlight-lexfree": ("peer", False, True),
}


def factory(name: str, lm, alpha, beta, beam):
    if name == "ctcli":
        return make_ctcli(lm, alpha, beta, beam)
    if name == "pyctcdecode":
        return make_pyctcdecode(lm, alpha, beta, beam)
    if name == "ctc-beam-decoder":
        return make_ctc_beam_decoder(lm, alpha, beta, beam)
    if name == "flashlight-lexicon":
        # flashlight's KenLM wrapper scores in log10: scale alpha to the same ln units
        a = None if alpha is None else alpha * math.log(10.0)
        return _flashlight_lexicon(lm, a, beta or 0.0, beam, arpa_vocab(lm) if lm else _VOCAB())
    if name == "flashlight-lexfree":
        return make_flashlight_lexfree(lm, alpha, beta, beam)
    raise KeyError(name)


def _VOCAB():
    return arpa_vocab(CACHE / "austen-4gram.arpa")


def run_jobs(name: str, jobs: list[dict], lm, lps) -> list[dict]:
    """Run decoding jobs (each: use_lm, alpha, beta, beam, idx) in this process."""
    out = []
    for job in jobs:
        t0 = time.process_time()
        dec = factory(name, lm if job["use_lm"] else None, job["alpha"], job["beta"], job["beam"])
        build_s = time.process_time() - t0
        dec(lps[job["idx"][0]])  # warm-up (JIT, caches) -- not timed
        texts, ms = [], []
        for i in job["idx"]:
            lp = lps[i]
            t0 = time.process_time()
            txt = dec(lp)
            dt = time.process_time() - t0
            texts.append(" ".join(txt.split()))
            ms.append(1000.0 * dt / (lp.shape[0] / FPS))
        out.append({**job, "texts": texts, "ms_per_s": ms, "build_s": build_s})
    return out


def run_contender(name: str, jobs: list[dict], lm, n_test, n_dev) -> list[dict]:
    where = CONTENDERS[name][0]
    if where == "main":
        _, _, tl, _, dl = dataset(n_test, n_dev)
        return run_jobs(name, jobs, lm, tl + dl)
    if not PEER_PY.exists() or not (PEER_PY.parent.parent / ".installed").exists():
        print("# setting up bench/.venv-decoder (bench/setup_decoder_peers.sh)", file=sys.stderr)
        if subprocess.run(["bash", str(HERE / "setup_decoder_peers.sh")]).returncode != 0:
            print(f"# skipping {name}: could not set up the peer venv", file=sys.stderr)
            return []
    spec = CACHE / f"jobs-{name}.json"
    res = CACHE / f"results-{name}.json"
    spec.write_text(
        json.dumps(
            {"name": name, "jobs": jobs, "lm": str(lm), "n_test": n_test, "n_dev": n_dev}
            | {"soft": SIM["soft"]}
        )
    )
    subprocess.run([str(PEER_PY), __file__, "--worker", str(spec), "--out", str(res)], check=True)
    return json.loads(res.read_text())


def worker(spec_path: str, out_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    SIM["soft"] = bool(spec.get("soft", False))
    npz = npz_path(spec["n_test"], spec["n_dev"])
    z = np.load(npz)
    lps = [z[f"lp{i}"] for i in range(spec["n_test"] + spec["n_dev"])]
    Path(out_path).write_text(json.dumps(run_jobs(spec["name"], spec["jobs"], spec["lm"], lps)))


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=100, help="test sentences")
    ap.add_argument("--dev", type=int, default=30, help="dev sentences for tuning alpha/beta")
    ap.add_argument("--quick", action="store_true", help="30 test / 15 dev sentences")
    ap.add_argument("--only", nargs="*", default=None, help="contenders to run")
    ap.add_argument("--beams", type=int, nargs="*", default=list(BEAMS))
    ap.add_argument("--retune", action="store_true")
    ap.add_argument("--soft", action="store_true", help="stress variant: less peaky posteriors")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        worker(a.worker, a.out)
        return
    if a.quick:
        a.n, a.dev = 30, 15
    SIM["soft"] = a.soft
    lm, texts, lps, dev_texts, dev_lps = dataset(a.n, a.dev)
    n_test, n_dev = a.n, a.dev
    test_idx = list(range(n_test))
    dev_idx = list(range(n_test, n_test + n_dev))
    secs = [lp.shape[0] / FPS for lp in lps]
    print(
        f"# {n_test} test sentences, {sum(secs):.0f} s of simulated audio "
        f"(median {statistics.median(secs):.1f} s); LM {lm.name} ({lm.stat().st_size >> 20} MiB)"
    )
    names = a.only or list(CONTENDERS)
    tuned_path = CACHE / "tuned.json"
    tuned = json.loads(tuned_path.read_text()) if tuned_path.exists() and not a.retune else {}
    refs_dev = dev_texts
    rows = []
    for name in names:
        _, has_lm, has_nolm = CONTENDERS[name]
        key = f"{name}:{n_dev}{'-soft' if a.soft else ''}"
        if has_lm and key not in tuned:
            grid = [
                {"use_lm": True, "alpha": al, "beta": be, "beam": 32, "idx": dev_idx}
                for al in ALPHAS_LN
                for be in BETAS
            ]
            res = run_contender(name, grid, lm, n_test, n_dev)
            if not res:
                continue
            best = min(res, key=lambda r: wer_cer(refs_dev, r["texts"]))
            tuned[key] = {"alpha": best["alpha"], "beta": best["beta"]}
            tuned_path.write_text(json.dumps(tuned, indent=1))
            print(
                f"# tuned {name}: alpha={best['alpha']} beta={best['beta']} "
                f"(dev WER {wer_cer(refs_dev, best['texts'])[0]:.3f})",
                file=sys.stderr,
            )
        jobs = []
        for beam in a.beams:
            if has_nolm:
                jobs.append(
                    {"use_lm": False, "alpha": None, "beta": None, "beam": beam, "idx": test_idx}
                )
            if has_lm:
                t = tuned[key]
                jobs.append(
                    {
                        "use_lm": True,
                        "alpha": t["alpha"],
                        "beta": t["beta"],
                        "beam": beam,
                        "idx": test_idx,
                    }
                )
        if key not in tuned and has_lm:
            continue
        for r in run_contender(name, jobs, lm, n_test, n_dev):
            w, c = wer_cer(texts, r["texts"])
            rows.append(
                {
                    "name": name,
                    "beam": r["beam"],
                    "lm": r["use_lm"],
                    "ms": statistics.median(r["ms_per_s"]),
                    "wer": w,
                    "cer": c,
                    "alpha": r["alpha"],
                    "beta": r["beta"],
                }
            )
    greedy = _greedy_rows(texts, lps)
    print_table(rows, greedy)
    hot = None
    ckey = f"ctcli:{n_dev}{'-soft' if a.soft else ''}"
    if "ctcli" in names and ckey in tuned:
        hot = hotword_cost(lm, tuned[ckey], texts, lps)
    (CACHE / f"last-results{'-soft' if a.soft else ''}.json").write_text(
        json.dumps({"rows": rows, "greedy": greedy, "hotwords": hot}, indent=1)
    )


def hotword_cost(lm, tuned, texts, lps) -> dict:
    """ctcli at beam 32 with the LM: time with 0, 10 and 1,000 hotwords.

    The three decoders take turns on each sentence (after one untimed pass
    that warms their LM caches), so load changes on a shared machine hit all
    of them alike; the cost is the median over sentences of the time ratio.
    """
    sys.path.insert(0, str(REPO))
    from ctcli.decoder import build_decoder

    vocab = [w for w in arpa_vocab(lm) if len(w) >= 4]
    rnd = random.Random(1)
    counts = (0, 10, 1000)
    decs = {}
    for n in counts:
        hw = rnd.sample(vocab, n) if n else None
        decs[n] = build_decoder(LABELS, lm=lm, beam_width=32, hotwords=hw, **tuned)
        for lp in lps:
            decs[n].decode(lp)
    ms = {n: [] for n in counts}
    hyps = {n: [] for n in counts}
    for i, lp in enumerate(lps):
        for k in range(len(counts)):
            n = counts[(i + k) % len(counts)]
            t0 = time.process_time()
            hyps[n].append(decs[n].decode(lp).text)
            ms[n].append(1000 * (time.process_time() - t0) / (lp.shape[0] / FPS))
    out = {}
    for n in counts:
        ratio = statistics.median(a / b for a, b in zip(ms[n], ms[0], strict=True))
        out[n] = {"ms": statistics.median(ms[n]), "ratio": ratio, "wer": wer_cer(texts, hyps[n])[0]}
    print("\nhotwords (ctcli, beam 32, word LM; random vocabulary words, default boost):")
    for n, r in out.items():
        print(
            f"  {n:>5} hotwords: {r['ms']:.2f} ms/s  (x{r['ratio']:.2f} of none, median "
            f"per-sentence ratio)  WER {r['wer']:.3f}"
        )
    return out


def _greedy_rows(texts, lps):
    sys.path.insert(0, str(REPO))
    from ctcli.decoder import greedy_decode

    hyps, ms = [], []
    for lp in lps:
        t0 = time.process_time()
        hyps.append(greedy_decode(lp, LABELS).text)
        ms.append(1000 * (time.process_time() - t0) / (lp.shape[0] / FPS))
    w, c = wer_cer(texts, hyps)
    return {"ms": statistics.median(ms), "wer": w, "cer": c}


def print_table(rows, greedy) -> None:
    print(
        f"\ngreedy (ctcli.greedy_decode): {greedy['ms']:.2f} ms/s  WER {greedy['wer']:.3f}  CER {greedy['cer']:.3f}\n"
    )
    hdr = f"{'decoder':<20} {'LM':<4} {'beam':>4} {'ms/s':>8} {'WER':>6} {'CER':>6} {'alpha':>5} {'beta':>5} {'ctcli x':>8}"
    print(hdr)
    print("-" * len(hdr))
    ours = {(r["beam"], r["lm"]): r["ms"] for r in rows if r["name"] == "ctcli"}
    for lm_flag in (True, False):
        for beam in sorted({r["beam"] for r in rows}):
            for r in rows:
                if r["beam"] != beam or r["lm"] != lm_flag:
                    continue
                o = ours.get((beam, lm_flag))
                ratio = f"{r['ms'] / o:8.2f}" if o and r["name"] != "ctcli" else f"{'':>8}"
                al = "" if r["alpha"] is None else f"{r['alpha']:.2f}"
                be = "" if r["beta"] is None else f"{r['beta']:.1f}"
                print(
                    f"{r['name']:<20} {'yes' if r['lm'] else 'no':<4} {beam:>4} {r['ms']:8.2f} "
                    f"{r['wer']:6.3f} {r['cer']:6.3f} {al:>5} {be:>5} {ratio}"
                )
            print()
    print(
        "ms/s: median CPU milliseconds per second of audio (single thread). "
        "'ctcli x': peer time / ctcli time at the same beam and LM setting (> 1: ctcli faster)."
    )


if __name__ == "__main__":
    main()
