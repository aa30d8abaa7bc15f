"""Training-data generators: synthetic samples with exact labels.

Each generator is deterministic given a seed, so training and evaluation sets
are reproducible and can be kept disjoint by seed range.
"""

from __future__ import annotations

# generator names accepted by `ctcli train --spec` / `ctcli eval --spec`
SPECS = ("expr", "expr-contest", "textline", "textline-heldout")


def get_generator(spec: str):
    """Return the generator class for a spec name (imports lazily)."""
    if spec == "expr":
        from ctcli.synth.expr import ExprCaptchaGenerator

        return ExprCaptchaGenerator
    if spec == "expr-contest":  # the contest's three templates only (evaluation)
        from ctcli.synth.expr import ContestCaptchaGenerator

        return ContestCaptchaGenerator
    if spec in ("textline", "textline-heldout"):  # printed English lines (ocr-en)
        from ctcli.synth.textline import TextLineGenerator

        if spec == "textline":
            return TextLineGenerator

        class HeldOutTextLineGenerator(TextLineGenerator):
            """Held-out fonts and text: evaluation only."""

            def __init__(self, seed: int):
                super().__init__(seed, held_out=True)

        return HeldOutTextLineGenerator
    raise ValueError(f"unknown generator spec {spec!r}; known: {', '.join(SPECS)}")
