"""Training-data generators: synthetic samples with exact labels.

Each generator is deterministic given a seed, so training and evaluation sets
are reproducible and can be kept disjoint by seed range. A spec may pin a
generator version with `@N` (`textline@1`); without it, the current version.
"""

from __future__ import annotations

# generator names accepted by `ctcli train --spec` / `ctcli eval --spec`
SPECS = ("expr", "expr-contest", "textline", "textline-heldout")


def split_spec(spec: str) -> tuple[str, int | None]:
    """`textline@1` -> ("textline", 1); `textline` -> ("textline", None)."""
    name, sep, ver = spec.partition("@")
    if not sep:
        return spec, None
    if not ver.isdigit():
        raise ValueError(f"bad generator version in spec {spec!r} (expected NAME@N)")
    return name, int(ver)


def spec_family(spec: str) -> str:
    """The model family of a spec: `textline-heldout@1` -> `textline`."""
    name, _ = split_spec(spec)
    return name.removesuffix("-heldout")


def get_generator(spec: str):
    """Return the generator class for a spec name (imports lazily)."""
    name, version = split_spec(spec)
    if name in ("expr", "expr-contest"):
        if version is not None:
            raise ValueError(f"spec {name!r} has a single version; drop '@{version}'")
        from ctcli.synth.expr import ContestCaptchaGenerator, ExprCaptchaGenerator

        # expr-contest: the contest's three templates only (evaluation)
        return ExprCaptchaGenerator if name == "expr" else ContestCaptchaGenerator
    if name in ("textline", "textline-heldout"):  # printed English lines (ocr-en)
        from ctcli.synth.textline import GEN_VERSION, VERSIONS, TextLineGenerator

        ver = GEN_VERSION if version is None else version
        if ver not in VERSIONS:
            raise ValueError(f"spec {spec!r}: textline versions are {VERSIONS}")
        held_out = name == "textline-heldout"

        class VersionedTextLineGenerator(TextLineGenerator):
            """Printed lines of one generator version (held-out fonts and text
            when the spec says -heldout: evaluation only)."""

            def __init__(self, seed: int):
                super().__init__(seed, held_out=held_out, version=ver)

        return VersionedTextLineGenerator
    raise ValueError(f"unknown generator spec {spec!r}; known: {', '.join(SPECS)} (+ @N)")
