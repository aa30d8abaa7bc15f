"""`ctcli lm ...`: build, convert and measure n-gram language models.

A thin Typer layer over `ctcli.lmbuild` and the `kenlm` module; both are
imported inside the commands so that `ctcli --help` stays fast.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from ctcli.errors import CtcliError, ExitCode, LMLoadError, UsageError

app = typer.Typer(
    help="Build and inspect n-gram language models (ARPA / KenLM binary).",
    no_args_is_help=True,
    add_completion=False,
)

TOOLS_DIR = Path(__file__).resolve().parent.parent / "bench" / ".venv-kenlm-tools" / "bin"


def _fail(e: CtcliError) -> typer.Exit:
    typer.echo(f"ctcli lm: error: {e}", err=True)
    return typer.Exit(int(e.exit_code))


def _parse_prune(prune: str | None) -> list[int] | None:
    if not prune:
        return None
    try:
        return [int(x) for x in prune.replace(",", " ").split()]
    except ValueError:
        raise UsageError(f"--prune takes integers such as '0,0,1,1', not {prune!r}") from None


def find_kenlm_tool(name: str) -> str | None:
    """Path of a KenLM program (`build_binary`, `lmplz`, `query`): from
    $CTCLI_KENLM_BIN, then bench/.venv-kenlm-tools/bin (lm/build_kenlm_tools.sh),
    then $PATH."""
    for d in (os.environ.get("CTCLI_KENLM_BIN"), str(TOOLS_DIR)):
        if d and (Path(d) / name).is_file() and os.access(Path(d) / name, os.X_OK):
            return str(Path(d) / name)
    return shutil.which(name)


def arpa_to_binary(
    arpa: str | Path, out: str | Path, quantize: int | None = 8, trie: bool = True
) -> None:
    """ARPA -> KenLM binary with `build_binary` (trie, optionally quantized).
    Written beside `out` and renamed into place: a failed run leaves no
    partial file, and a process that has the old file mapped (KenLM maps
    binaries) keeps reading the old one instead of crashing."""
    tool = find_kenlm_tool("build_binary")
    if tool is None:
        raise LMLoadError(
            "build_binary not found: run lm/build_kenlm_tools.sh (or `make kenlm-tools`), "
            "or set CTCLI_KENLM_BIN"
        )
    cmd = [tool]
    if trie and quantize:
        cmd += ["-q", str(quantize), "-b", str(quantize)]
    out = Path(out)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    cmd += ["trie" if trie else "probing", str(arpa), str(tmp)]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            last = (r.stderr.strip().splitlines() or [f"exit status {r.returncode}"])[-1]
            raise LMLoadError(f"build_binary failed: {last}")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


@app.command()
def build(
    corpus: Annotated[
        str, typer.Argument(help="Text, one sentence a line (UTF-8; gzip/bz2/xz ok); '-' = stdin.")
    ],
    out: Annotated[
        Path, typer.Option("-o", "--out", help="Output ARPA file (or .bin with --binary).")
    ],
    order: Annotated[
        int, typer.Option("--order", "-n", help="N-gram order (2-9; KenLM loads up to 6).")
    ] = 4,
    unit: Annotated[
        str,
        typer.Option(
            help="Token unit: word | char (char: one token a character, '<sp>' for space)."
        ),
    ] = "word",
    normalize: Annotated[
        str, typer.Option(help="Text normalisation: en (lowercase a-z and ') | none.")
    ] = "en",
    prune: Annotated[
        str | None,
        typer.Option(
            help="Count thresholds per order from unigrams, e.g. '0,0,1,1' (lmplz --prune)."
        ),
    ] = None,
    exclude: Annotated[
        Path | None,
        typer.Option(
            help="File of sentences that must not be in the model (e.g. evaluation transcripts)."
        ),
    ] = None,
    unigrams: Annotated[
        Path | None,
        typer.Option(help="Also write the vocabulary, one word a line, most frequent first."),
    ] = None,
    binary: Annotated[
        bool,
        typer.Option(
            "--binary", help="Write a KenLM binary (trie, 8-bit quantised) via build_binary."
        ),
    ] = False,
    strict_discounts: Annotated[
        bool,
        typer.Option(
            help="Fail instead of using fallback discounts (0.5, 1, 1.5) on tiny corpora."
        ),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the build statistics as JSON on stdout.")
    ] = False,
    space_token: Annotated[
        str, typer.Option(help="Char mode: the token written for a space character.")
    ] = "<sp>",
) -> None:
    """Estimate an interpolated modified Kneser-Ney LM from a text corpus."""
    from ctcli.lmbuild import DEFAULT_DISCOUNT_FALLBACK, build_lm

    try:
        arpa = out.with_name(out.name + ".arpa.tmp") if binary else out
        stats = build_lm(
            corpus,
            arpa,
            order=order,
            unit=unit,
            normalize=normalize,
            prune=_parse_prune(prune),
            exclude=exclude,
            unigrams=unigrams,
            space_token=space_token,
            discount_fallback=None if strict_discounts else DEFAULT_DISCOUNT_FALLBACK,
        )
        if binary:
            try:
                arpa_to_binary(arpa, out)
            finally:
                arpa.unlink(missing_ok=True)
            stats.out = str(out)
    except CtcliError as e:
        raise _fail(e) from None
    skipped = stats.skipped_binary + stats.skipped_non_utf8
    if as_json:
        typer.echo(json.dumps(stats.as_dict()))
    msg = (
        f"{stats.out}: order {stats.order} {stats.unit}, {stats.sentences} sentences, "
        f"{stats.tokens} tokens, vocab {stats.vocab_size}, n-grams "
        f"{' '.join(map(str, stats.ngrams))}, {stats.seconds:.1f} s"
    )
    typer.echo(msg, err=True)
    if skipped:
        typer.echo(
            f"warning: skipped {stats.skipped_non_utf8} non-UTF-8 and "
            f"{stats.skipped_binary} binary lines of {stats.lines}",
            err=True,
        )
    if stats.discount_fallback:
        typer.echo(
            f"note: fallback discounts for orders {stats.discount_fallback} (small counts)",
            err=True,
        )
    if stats.excluded:
        typer.echo(f"excluded {stats.excluded} lines matching --exclude", err=True)
    if order > 6:
        typer.echo(
            "note: the kenlm Python module (ufal-kenlm) loads models up to order 6", err=True
        )


@app.command("binary")
def binary_cmd(
    arpa: Annotated[Path, typer.Argument(help="ARPA file.")],
    out: Annotated[Path, typer.Argument(help="KenLM binary to write.")],
    quantize: Annotated[int, typer.Option(help="Bits for probabilities/backoffs (0 = none).")] = 8,
    probing: Annotated[
        bool, typer.Option(help="Probing hash table instead of trie (faster, larger).")
    ] = False,
) -> None:
    """Convert an ARPA file to KenLM's binary format (loads in milliseconds)."""
    try:
        arpa_to_binary(arpa, out, quantize=quantize or None, trie=not probing)
    except CtcliError as e:
        raise _fail(e) from None
    typer.echo(f"{out}: {out.stat().st_size} bytes", err=True)


def perplexity(lm: str | Path, lines, unit: str = "word", normalize: str = "en") -> dict:
    """Perplexity of a KenLM model over text lines (with </s>, like `query`).
    Returns {"perplexity", "sentences", "tokens", "oov"}."""
    import kenlm

    from ctcli.lmbuild import tokenize

    try:
        model = kenlm.Model(str(lm))
    except (OSError, RuntimeError) as e:
        raise LMLoadError(f"{lm}: cannot load: {e}") from e
    total = 0.0
    n_tok = n_sent = n_oov = 0
    for line in lines:
        toks = tokenize(line, unit, normalize)
        if not toks:
            continue
        n_sent += 1
        for logp, _, oov in model.full_scores(" ".join(toks), bos=True, eos=True):
            total += logp
            n_oov += int(oov)
        n_tok += len(toks) + 1
    if n_tok == 0:
        raise UsageError("no tokens in the test text")
    return {
        "perplexity": 10 ** (-total / n_tok),
        "sentences": n_sent,
        "tokens": n_tok,
        "oov": n_oov,
    }


@app.command()
def ppl(
    lm: Annotated[
        str, typer.Argument(help="Bundled LM name (ctcli models) or ARPA / KenLM binary path.")
    ],
    text: Annotated[str, typer.Argument(help="Test text, one sentence a line; '-' = stdin.")],
    unit: Annotated[
        str | None, typer.Option(help="word | char (default: from the manifest, else word).")
    ] = None,
    normalize: Annotated[
        str | None, typer.Option(help="en | none (default: from the manifest, else en).")
    ] = None,
) -> None:
    """Perplexity of an LM on a text (through KenLM, counting </s>)."""
    try:
        path, info = _resolve_lm(lm)
        unit = unit or info.get("unit") or "word"
        normalize = normalize or info.get("normalize") or ("none" if unit == "char" else "en")
        if text == "-":
            res = perplexity(path, sys.stdin, unit, normalize)
        else:
            with open(text, encoding="utf-8", errors="replace") as fh:
                res = perplexity(path, fh, unit, normalize)
    except CtcliError as e:
        raise _fail(e) from None
    except OSError as e:
        typer.echo(f"ctcli lm: error: {text}: {e.strerror or e}", err=True)
        raise typer.Exit(int(ExitCode.INPUT_FAILED)) from None
    res = {k: round(v, 4) if isinstance(v, float) else v for k, v in res.items()}
    typer.echo(json.dumps({"lm": str(path), "unit": unit, "normalize": normalize, **res}))


def _resolve_lm(name_or_path: str) -> tuple[Path, dict]:
    """A bundled LM name (via ctcli.registry, sha256-checked) or a path."""
    p = Path(name_or_path)
    if p.is_file():
        return p, {}
    try:
        from ctcli.registry import resolve_lm
    except ImportError:  # registry not there: paths only
        raise LMLoadError(f"{name_or_path}: no such LM file") from None
    path, entry = resolve_lm(name_or_path)
    return Path(path), (entry.info if entry is not None else {})


@app.command("expr-corpus")
def expr_corpus(
    n: Annotated[int, typer.Argument(help="Number of expressions.")] = 100000,
    seed: Annotated[
        int, typer.Option(help="Random seed (the corpus is deterministic for a seed).")
    ] = 0,
) -> None:
    """Print random arithmetic expressions 'EXPR=RESULT', one a line (expr-char corpus)."""
    from ctcli.lmbuild import generate_expressions

    out = sys.stdout
    for line in generate_expressions(n, seed):
        out.write(line + "\n")


if __name__ == "__main__":  # `python -m ctcli.cli_lm ...` (used by lm/recipe.sh)
    app()
