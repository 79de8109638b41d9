"""Where a number comes from, said the same way everywhere: the source labels of tables, figures and reports."""

from __future__ import annotations

SYNTHAGE = "SynthAge (synthetic)"
PAPER = "paper (reported)"


def this_run(what: str) -> str:
    """``"this run, <what>"``: a number measured by this code (e.g. ``this_run(SYNTHAGE)``)."""
    return f"this run, {what}"
