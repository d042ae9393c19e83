"""What a table row claims: the one `Verdict` enum, the default margin and alpha, and the
label a row prints.

A row compares a variant's best validation loss with the baseline's, seed by seed (lower is
better). `anytime.py` decides the claims (intervals valid at every look, simultaneous across
a table's rows); this module names them, so the table, the plots, `sweep best` and the
report speak one vocabulary.

Margin
    DEFAULT_MARGIN = 0.02 nats of best val loss: exp(0.02) ≈ 1.02, a 2% change in
    perplexity, about the smallest change of a character model worth keeping a knob for,
    and small next to the unpaired seed-to-seed spread of short runs (0.03–0.07 on the
    smoke profile), so "equivalent" is a claim that pairing and seeds must earn.
"""

from __future__ import annotations

from enum import StrEnum

DEFAULT_ALPHA = 0.05
DEFAULT_MARGIN = 0.02  # nats of best val loss: exp(0.02) ≈ 2% in perplexity (module docstring)


class Verdict(StrEnum):
    BASELINE = "baseline"
    BETTER = "better"  # the interval lies below 0
    WORSE = "worse"  # above 0 (also with diverged seeds: they only add to the losses)
    EQUIVALENT = "equivalent"  # inside ± margin
    INCONCLUSIVE = "inconclusive"  # neither yet: more seeds may settle it
    SINGLE_SEED = "single seed"  # one pair: cannot be told from seed noise (a candidate)
    UNSTABLE = "unstable"  # seeds diverged, and the finite ones do not say `worse`
    NO_RESULT = "no result"  # nothing counted: the row says why (failed, killed, running)


FINAL = (Verdict.BETTER, Verdict.WORSE, Verdict.EQUIVALENT)


def row_label(verdict: Verdict, diverged: int, n_total: int, base_div: int, n_base: int) -> str:
    """What the table prints: `better`, `unstable (1/3 diverged)`, `worse (1/3 diverged)`,
    with `(baseline 1/4 diverged)` appended when baseline seeds diverged."""
    text = verdict.value
    if diverged:
        text += f" ({diverged}/{n_total} diverged)"
    if base_div:
        text += f" (baseline {base_div}/{n_base} diverged)"
    return text
