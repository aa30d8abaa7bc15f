"""lm/prepare_corpus.py: sentences of LibreOffice's help pages (present-day
English for the word LM) from a page shaped like the packaged ones."""

from __future__ import annotations

import importlib.util
from pathlib import Path

LM_DIR = Path(__file__).resolve().parent.parent / "lm"

PAGE = """<!DOCTYPE html><html><head><title>Macro Security</title>
<script>var x = "Ignore this script text entirely.";</script></head><body>
<header><a href="x"><p>LibreOffice 7.4 Help for all modules</p></a></header>
<aside><input type="search"><div>Search in all modules of the help.</div></aside>
<h1>Macro Security</h1>
<p class="paragraph">The dialog appears when a document contains macros. Press
<span hidden="true">Command</span><span>Ctrl</span> while you click the name to select it.</p>
<p>Enter the formula =SUM(A1:B2) in the cell to add the values.</p>
<p>Open the file /usr/share/doc/readme.txt with the editor of your choice.</p>
<p>Saves the recorded macro in a new module</p>
<p>THIS TEXT IS SHOUTING AT THE READER HERE.</p>
<ul><li>You can add objects to a group.</li><li>You can add objects to a group.</li></ul>
<p>Too short here.</p>
<footer><p>This page is the debug information of the help system.</p></footer>
</body></html>"""


def _module():
    spec = importlib.util.spec_from_file_location("prepare_corpus", LM_DIR / "prepare_corpus.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_help_pages_give_running_text_only(tmp_path):
    mod = _module()
    d = tmp_path / "usr/share/libreoffice/help/en-US/text/shared"
    d.mkdir(parents=True)
    (d / "a.html").write_text(PAGE, encoding="utf-8")
    (d / "b.html").write_text(PAGE.replace("Macro Security", "Other Page"), encoding="utf-8")
    assert mod.libreoffice_help(tmp_path) == [
        "The dialog appears when a document contains macros.",
        "Press Ctrl while you click the name to select it.",  # the hidden macOS key left out
        "You can add objects to a group.",  # once, though on both pages and twice in a list
    ]


def test_help_sentences_go_to_their_own_files(tmp_path):
    """The help text is split into help-train / help-test beside, not into,
    the older English of train.txt / test.txt."""
    mod = _module()
    n = mod._write_split(
        (("a", lambda: [f"sentence number {i} is here." for i in range(10)]),),
        tmp_path / "help-train.txt",
        tmp_path / "help-test.txt",
        4,
    )
    assert n == (8, 2)
    assert (tmp_path / "help-test.txt").read_text().splitlines() == [
        "sentence number 3 is here.",
        "sentence number 7 is here.",
    ]
