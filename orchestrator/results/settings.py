"""How a table decides (alpha, margin), fixed at a sweep's first table.

A sweep records its settings as tags of its parent run (`sweep.alpha`, `sweep.margin`). They
are *fixed* once its first table is attached (the parent then carries the baseline seeds that
table used, `sweep.table_baseline_seeds`; a sweep from before that tag: its best-row verdict
or the old `sweep.sequential` tag): a margin or alpha chosen after seeing the data could make
any row read as one likes. So:

- a training command (`sweep ablate`, `--until-clear`, `sweep confirm`) that leaves the flags
  out keeps what the sweep recorded; a different value is refused with one line once the
  settings are fixed, and replaces the recorded one (with a note) before;
- `sweep table` / `sweep report` with other values decide a *separate analysis*: the table
  says so in its verdict header and legend, names the recorded values, and nothing is
  written; the recorded tags are never rewritten.

Stores written before the anytime verdicts may carry `sweep.sequential` (the looks of the
old `--until-clear`): it is read only to say so in the legend; the anytime verdicts hold at
every look, so those sweeps' tables are valid as decided now.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import UserError
from ..tracking import RunInfo
from ..tracking.schema import (
    TAG_ALPHA,
    TAG_BEST_VERDICT,
    TAG_MARGIN,
    TAG_SEQUENTIAL,
    TAG_TABLE_SEEDS,
)
from .verdicts import DEFAULT_ALPHA, DEFAULT_MARGIN


@dataclass(frozen=True)
class Settings:
    """How a table decides: the family-wise level alpha and the practical margin (nats)."""

    alpha: float = DEFAULT_ALPHA
    margin: float = DEFAULT_MARGIN

    def __post_init__(self):
        if not (
            isinstance(self.margin, (int, float))
            and math.isfinite(self.margin)
            and self.margin >= 0
        ):
            raise UserError(f"--margin must be a number >= 0 (val-loss nats), got {self.margin!r}")
        if not (isinstance(self.alpha, (int, float)) and 0 < self.alpha < 1):
            raise UserError(f"--alpha must be between 0 and 1, got {self.alpha!r}")

    def tags(self) -> dict[str, str]:
        return {TAG_ALPHA: repr(self.alpha), TAG_MARGIN: repr(self.margin)}

    def text(self) -> str:
        return f"margin {self.margin:g}, alpha {self.alpha:g}"

    @classmethod
    def recorded(cls, parent: RunInfo) -> Settings:
        """The settings recorded with a sweep (the defaults where it recorded none)."""
        tags = parent.tags
        return cls(
            alpha=float(tags.get(TAG_ALPHA, DEFAULT_ALPHA)),
            margin=float(tags.get(TAG_MARGIN, DEFAULT_MARGIN)),
        )

    def given(self, alpha: float | None, margin: float | None) -> Settings:
        """These settings with the flags that were given in their place."""
        return Settings(
            alpha=self.alpha if alpha is None else alpha,
            margin=self.margin if margin is None else margin,
        )


def is_fixed(parent: RunInfo) -> bool:
    """Whether a table of the sweep was attached (its settings are fixed from then on)."""
    return any(t in parent.tags for t in (TAG_TABLE_SEEDS, TAG_BEST_VERDICT, TAG_SEQUENTIAL))


def legacy_looks(parent: RunInfo) -> bool:
    """The sweep added seeds until clear under the old fixed schedule (`sweep.sequential`)."""
    return TAG_SEQUENTIAL in parent.tags


def settings_for(
    parent: RunInfo | None, alpha: float | None = None, margin: float | None = None
) -> tuple[Settings, list[str]]:
    """The settings a training command records with its sweep, and notes for the user.

    A new sweep: the flags, else the defaults. An existing one: what it recorded where a
    flag is left out or repeats it; another value replaces it (with a note) until the
    sweep's first table is attached, and is refused (UserError, one line) after.
    """
    asked = Settings(  # bad values are refused whether or not the sweep exists
        alpha=DEFAULT_ALPHA if alpha is None else alpha,
        margin=DEFAULT_MARGIN if margin is None else margin,
    )
    if parent is None:
        return asked, []
    before = Settings.recorded(parent)
    changed = [
        (flag, old, new)
        for flag, old, new in (
            ("--margin", before.margin, margin),
            ("--alpha", before.alpha, alpha),
        )
        if new is not None and new != old
    ]
    if changed and is_fixed(parent):
        flag, old, new = changed[0]
        raise UserError(
            f"{parent.name} decided its table with {flag} {old:g}, fixed at its first table: "
            f"leave {flag} out (`sweep table --sweep {parent.run_id} {flag} {new:g}` shows a "
            "separate analysis without recording it)"
        )
    notes = [
        f"{flag} {new:g} replaces the {old:g} recorded with {parent.name} (no table was "
        "decided with it yet); fixed from its first table on"
        for flag, old, new in changed
    ]
    return before.given(alpha, margin), notes


def ci_percent(level: float) -> str:
    return f"{round(100 * (1 - level), 2):g}%"


def ci_label(level: float) -> str:
    """`95% simultaneous CI` at alpha 0.05: every row's interval, at every look, together."""
    return f"{ci_percent(level)} simultaneous CI"
