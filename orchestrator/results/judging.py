"""Judging a table's rows, and the sentence under the table that says how they were judged.

Rows are judged in one of two families. Fixed-n rows (every row of a plain sweep) are
compared with the baseline at level alpha, Holm-adjusted across the rows that have a
p-value. The rows of the values a `--until-clear` sweep added seeds to replay its looks
(`sequential_rows`): look k uses the first n0 + k - 1 seeds of the baseline and is tested
at its alpha-spending level alpha_k, Holm across those rows only, so a later `sweep table`
says what the run said. A value added to such a sweep later by a plain `sweep ablate` is
not part of its looks: it is judged at fixed n, with the other fixed-n rows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from .settings import Settings, ci_percent
from .verdicts import FINAL, Comparison, Row, compare, decide, decide_look


class Group(Protocol):
    """The runs of one configuration (`table.Group`): its value and its losses by seed."""

    value: str

    def done(self) -> Sequence: ...

    def losses(self) -> dict: ...


@dataclass(frozen=True)
class Replay:
    """The rows after the last complete look of a seeds-until-clear sweep."""

    rows: list[Row]
    looks: int  # looks completed (look k used n0 + k - 1 seeds)


@dataclass
class Judged:
    """One decided Row per group (None for groups without finished runs), and how."""

    rows: list[Row | None]
    looks: int = 0  # looks replayed for the until-clear rows (0: none)
    n_holm: int = 0  # fixed-n rows Holm adjusted across (the rows with a p-value)
    sequential: list[str] = field(default_factory=list)  # values that replayed the looks
    fixed: list[str] = field(default_factory=list)  # values judged at fixed n
    levels: dict[str, float] = field(default_factory=dict)  # until-clear value: its row's level


def sequential_rows(
    base: dict, variants: list[dict], n0: int, max_seeds: int, alpha: float, margin: float
) -> Replay | None:
    """Replay the looks of a seeds-until-clear sweep on the seeds recorded (first n seeds
    of the baseline at look n); None before the first look is complete."""
    order = sorted(base)
    n_looks = max_seeds - n0 + 1
    rows: list[Row] | None = None
    looks = 0
    for look in range(1, n_looks + 1):
        use = order[: n0 + look - 1]
        if len(use) < n0 + look - 1:
            break
        open_rows = [
            i for i in range(len(variants)) if rows is None or rows[i].verdict not in FINAL
        ]
        if any(not set(use) <= set(variants[i]) for i in open_rows):
            break  # this look was not completed (interrupted): stop at the previous one
        b = {s: base[s] for s in use}
        vs = [{s: v[s] for s in use if s in v} for v in variants]
        rows = decide_look(b, vs, look, n_looks, rows, alpha, margin).rows
        looks = look
    return Replay(rows, looks) if rows is not None else None


def judge(base: Group, groups: list[Group], settings: Settings) -> Judged:
    """Decide every group with finished runs: the until-clear ones by replaying the looks
    (when the first look is complete), the others at fixed n."""
    base_losses = base.losses()
    live = [i for i, g in enumerate(groups) if g.done()]
    seq = [i for i in live if settings.covered(groups[i].value)] if base_losses else []
    out: list[Row | None] = [None] * len(groups)
    looks = 0
    if seq:
        n0, top = settings.sequential  # type: ignore[misc]
        replay = sequential_rows(
            base_losses, [groups[i].losses() for i in seq], n0, top, settings.alpha, settings.margin
        )
        if replay is None:
            seq = []  # the first look is not complete: those rows are judged at fixed n
        else:
            looks = replay.looks
            for i, row in zip(seq, replay.rows, strict=True):
                out[i] = row
    fixed = [i for i in live if i not in seq]
    comparisons: list[Comparison] = [
        compare(base_losses, groups[i].losses(), settings.alpha) for i in fixed
    ]
    for i, row in zip(fixed, decide(comparisons, settings.alpha, settings.margin), strict=True):
        out[i] = row
    return Judged(
        out,
        looks,
        n_holm=sum(not math.isnan(c.p_value) for c in comparisons),
        sequential=[groups[i].value for i in seq],
        fixed=[groups[i].value for i in fixed],
        levels={groups[i].value: out[i].level for i in seq if out[i] is not None},
    )


def _values(knob: str, values: list[str]) -> str:
    return ", ".join(f"{knob}={v}" for v in values)


def describe(settings: Settings, judged: Judged | None = None, knob: str = "") -> str:
    """The sentence under a table: what its verdicts mean, with the margin and alpha used,
    the rows Holm adjusts across, and for --until-clear rows the levels of their looks."""
    a, m, pct = settings.alpha, settings.margin, ci_percent(settings.alpha)
    seq = judged.sequential if judged else []
    text = (
        "delta: variant minus baseline best val loss with its interval, over the seeds both "
        "sides share (paired t; Welch where seeds differ). "
    )
    if judged is None:
        text += f"better/worse: Holm-adjusted p < {a:g} across the table's variant rows"
    elif not judged.n_holm and not seq:  # hardening (issue 17): never "across the 0 row(s)"
        text += "better/worse: none yet, no row has a p-value (that needs 2+ seeds); "
    elif judged.fixed or not seq:
        text += f"better/worse: Holm-adjusted p < {a:g} across the {judged.n_holm} row(s) "
        text += "with a p-value" + (" judged at fixed seeds" if seq else "")
    if judged is None or (judged.n_holm and (judged.fixed or not seq)):
        text += f", the {pct} interval excluding 0; "
    text += (
        f"equivalent: the interval lies inside ±{m:g} nats; inconclusive: neither, and "
        "seeds_needed estimates the seeds per side that would settle it; single seed: one run "
        "cannot be told from noise."
    )
    if judged is not None and seq:
        n0, top = settings.sequential  # type: ignore[misc]
        levels = ", ".join(
            f"{_values(knob, [v])}: {ci_percent(lv)}" for v, lv in judged.levels.items()
        )
        text += (
            f" Seeds were added until clear for {_values(knob, seq)}: looks at {n0}..{top} "
            f"seeds ({judged.looks} replayed); at look k, better/worse needs Holm-adjusted p < "
            f"alpha_k across these {len(seq)} row(s), Pocock-type spending of alpha {a:g} over "
            "the looks, so looking after every seed does not inflate false verdicts. Their "
            "intervals are at the adjusted level 1 - alpha_k of the look that decided them "
            f"(the last look while inconclusive): {levels}."
        )
        if judged.fixed:
            text += (
                f" {_values(knob, judged.fixed)} joined without --until-clear: judged at fixed "
                "seeds, not part of the looks."
            )
    return (
        text
        + " compute_to_target: training FLOPs to reach the baseline's best val loss, relative to the baseline."
    )
