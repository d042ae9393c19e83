"""orchestrator.results.verdicts: one Verdict enum for the whole package, and the labels rows print."""

from __future__ import annotations

from orchestrator.results import anytime, best, plots, table
from orchestrator.results.verdicts import FINAL, Verdict, row_label


def test_one_verdict_enum_everywhere():
    assert anytime.Verdict is Verdict and table.Verdict is Verdict
    assert best.Verdict is Verdict and plots.Verdict is Verdict
    assert tuple(anytime.CODES) == tuple(Verdict)  # the decision code indexes this enum
    assert FINAL == (Verdict.BETTER, Verdict.WORSE, Verdict.EQUIVALENT)


def test_labels_name_diverged_seeds_of_the_row_and_of_the_baseline():
    assert row_label(Verdict.BETTER, 0, 3, 0, 3) == "better"
    assert row_label(Verdict.UNSTABLE, 1, 3, 0, 3) == "unstable (1/3 diverged)"
    assert row_label(Verdict.WORSE, 2, 5, 0, 5) == "worse (2/5 diverged)"
    assert row_label(Verdict.INCONCLUSIVE, 0, 4, 1, 4) == "inconclusive (baseline 1/4 diverged)"
