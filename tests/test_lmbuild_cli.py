"""`ctcli lm ...` through Typer's CliRunner and a real subprocess pipe."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from ctcli import cli_lm

kenlm = pytest.importorskip("kenlm")
runner = CliRunner()

CORPUS = "\n".join(["The cat sat on the mat.", "A dog sat on a log!", "the cat ran"] * 10) + "\n"


def test_build_and_ppl(tmp_path):
    src = tmp_path / "c.txt"
    src.write_text(CORPUS)
    out = tmp_path / "m.arpa"
    uni = tmp_path / "m.uni"
    r = runner.invoke(
        cli_lm.app,
        ["build", str(src), "-o", str(out), "--order", "3", "--unigrams", str(uni), "--json"],
    )
    assert r.exit_code == 0, r.output
    stats = json.loads(r.stdout.strip().splitlines()[-1])
    assert (
        stats["order"] == 3
        and stats["sentences"] == 30
        and stats["ngrams"][0] == stats["vocab_size"]
    )
    assert kenlm.Model(str(out)).order == 3
    assert uni.read_text().splitlines()[:3] == ["the", "a", "cat"]  # by count, then a-z
    r = runner.invoke(cli_lm.app, ["ppl", str(out), str(src)])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["sentences"] == 30 and 1 < res["perplexity"] < 10 and res["oov"] == 0


def test_build_from_stdin_char(tmp_path):
    out = tmp_path / "e.arpa"
    r = runner.invoke(cli_lm.app, ["expr-corpus", "200", "--seed", "3"])
    assert r.exit_code == 0 and len(r.stdout.splitlines()) == 200
    r2 = runner.invoke(
        cli_lm.app,
        ["build", "-", "-o", str(out), "--order", "5", "--unit", "char", "--normalize", "none"],
        input=r.stdout,
    )
    assert r2.exit_code == 0, r2.output
    assert kenlm.Model(str(out)).order == 5


def test_exit_codes(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    r = runner.invoke(cli_lm.app, ["build", str(empty), "-o", str(tmp_path / "x.arpa")])
    assert r.exit_code == 1 and "empty" in r.output and "Traceback" not in r.output
    src = tmp_path / "c.txt"
    src.write_text(CORPUS)
    r = runner.invoke(
        cli_lm.app, ["build", str(src), "-o", str(tmp_path / "x.arpa"), "--prune", "0,x"]
    )
    assert r.exit_code == 2
    r = runner.invoke(
        cli_lm.app, ["build", str(src), "-o", str(tmp_path / "x.arpa"), "--order", "1"]
    )
    assert r.exit_code == 2
    r = runner.invoke(cli_lm.app, ["ppl", str(tmp_path / "missing.arpa"), str(src)])
    assert r.exit_code == 3
    assert not (tmp_path / "x.arpa").exists()


def test_real_pipe(tmp_path):
    out = tmp_path / "p.arpa"
    p = subprocess.run(
        [sys.executable, "-m", "ctcli.cli_lm", "build", "-", "-o", str(out), "--order", "2"],
        input=CORPUS.encode(),
        capture_output=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout == b""  # statistics go to stderr unless --json
    assert b"30 sentences" in p.stderr
    assert kenlm.Model(str(out)).order == 2


def test_import_is_light():
    code = "import sys, ctcli.cli_lm; print('numpy' in sys.modules, 'kenlm' in sys.modules)"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.stdout.split() == ["False", "False"]


def test_binary_conversion(tmp_path):
    if cli_lm.find_kenlm_tool("build_binary") is None:
        pytest.skip("build_binary not built (lm/build_kenlm_tools.sh)")
    src = tmp_path / "c.txt"
    src.write_text(CORPUS)
    out = tmp_path / "m.bin"
    r = runner.invoke(cli_lm.app, ["build", str(src), "-o", str(out), "--order", "3", "--binary"])
    assert r.exit_code == 0, r.output
    assert not out.read_bytes().startswith(b"\\data\\")  # KenLM binary, not ARPA
    assert not list(tmp_path.glob("*.tmp"))
    arpa = tmp_path / "m.arpa"
    runner.invoke(cli_lm.app, ["build", str(src), "-o", str(arpa), "--order", "3"])
    a, b = kenlm.Model(str(out)), kenlm.Model(str(arpa))
    for s in ["the cat sat on the mat", "a dog ran"]:
        assert a.score(s) == pytest.approx(b.score(s), abs=0.05)  # 8-bit quantised
    r = runner.invoke(cli_lm.app, ["binary", str(arpa), str(tmp_path / "p.bin"), "--probing"])
    assert r.exit_code == 0, r.output
    assert kenlm.Model(str(tmp_path / "p.bin")).score("a dog ran") == pytest.approx(
        b.score("a dog ran"), abs=1e-4
    )


def test_binary_is_replaced_whole_or_not_at_all(tmp_path, monkeypatch):
    """build_binary writes beside the target, which is renamed into place
    only when it succeeded: a failure leaves the old file as it was and no
    partial one, and a success gives the target a new inode (a process that
    has the old file mapped keeps it)."""
    tools = tmp_path / "tools"
    tools.mkdir()
    tool = tools / "build_binary"
    monkeypatch.setenv("CTCLI_KENLM_BIN", str(tools))
    out = tmp_path / "m.bin"
    out.write_bytes(b"old model")
    old_inode = out.stat().st_ino
    # a tool that writes half its output, then fails
    tool.write_text(
        '#!/bin/sh\nfor a; do last=$a; done\nprintf partial > "$last"\necho "disk full" >&2\nexit 1\n'
    )
    tool.chmod(0o755)
    with pytest.raises(cli_lm.LMLoadError, match="^build_binary failed: disk full$"):
        cli_lm.arpa_to_binary(tmp_path / "m.arpa", out)
    assert out.read_bytes() == b"old model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.bin", "tools"]
    tool.write_text('#!/bin/sh\nfor a; do last=$a; done\nprintf "new model" > "$last"\n')
    cli_lm.arpa_to_binary(tmp_path / "m.arpa", out)
    assert out.read_bytes() == b"new model" and out.stat().st_ino != old_inode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.bin", "tools"]


def test_ppl_by_bundled_name(tmp_path):
    from ctcli.registry import find_lm

    if find_lm("expr-char") is None:
        pytest.skip("expr-char not bundled")
    test = tmp_path / "t.txt"
    test.write_text("(1+2)*3=9\n4-5=-1\n")
    r = runner.invoke(cli_lm.app, ["ppl", "expr-char", str(test)])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["unit"] == "char" and res["normalize"] == "none" and res["oov"] == 0
    assert res["tokens"] == 9 + 1 + 6 + 1 and 1 < res["perplexity"] < 10
    r = runner.invoke(cli_lm.app, ["ppl", "no-such-lm", str(test)])
    assert r.exit_code == 3
