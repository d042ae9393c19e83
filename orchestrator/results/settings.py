"""How a table decides, and what a sweep records of it: alpha, margin, the looks of --until-clear.

A sweep records its settings as tags of its parent run (`sweep.alpha`, `sweep.margin`, and
`sweep.sequential` after `--until-clear`: the looks n0..max_seeds and the values whose seeds
were added look by look). A later command on the same sweep reads them back: a flag left
out keeps what was recorded; a flag that changes it updates a plain sweep (with a note), but
is refused on a sweep whose seeds were added until clear, since its looks were decided with
the recorded values and replaying them with others would not say what the run said.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from ..errors import UserError
from ..tracking import RunInfo
from ..tracking.schema import TAG_ALPHA, TAG_MARGIN, TAG_SEQUENTIAL
from .verdicts import DEFAULT_ALPHA, DEFAULT_MARGIN


@dataclass(frozen=True)
class Settings:
    """How a table decides: test level, practical margin (nats), sequential looks if any."""

    alpha: float = DEFAULT_ALPHA
    margin: float = DEFAULT_MARGIN
    sequential: tuple[int, int] | None = None  # (n0, max_seeds)
    # the values whose seeds were added until clear (their rows replay the looks); None:
    # every row (what a sweep recorded before the values were)
    covers: tuple[str, ...] | None = None

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
        out = {TAG_ALPHA: repr(self.alpha), TAG_MARGIN: repr(self.margin)}
        if self.sequential:
            seq: dict = {"n0": self.sequential[0], "max_seeds": self.sequential[1]}
            if self.covers is not None:
                seq["values"] = list(self.covers)
            out[TAG_SEQUENTIAL] = json.dumps(seq)
        return out

    def covered(self, value: str) -> bool:
        """Whether the row of `value` replays the looks of --until-clear."""
        return bool(self.sequential) and (self.covers is None or value in self.covers)

    @classmethod
    def recorded(
        cls, parent: RunInfo, alpha: float | None = None, margin: float | None = None
    ) -> Settings:
        """The settings recorded with a sweep; `alpha`/`margin` given here override them."""
        tags = parent.tags
        seq = json.loads(tags[TAG_SEQUENTIAL]) if TAG_SEQUENTIAL in tags else None
        values = seq.get("values") if seq else None
        return cls(
            alpha=float(tags.get(TAG_ALPHA, DEFAULT_ALPHA)) if alpha is None else alpha,
            margin=float(tags.get(TAG_MARGIN, DEFAULT_MARGIN)) if margin is None else margin,
            sequential=(int(seq["n0"]), int(seq["max_seeds"])) if seq else None,
            covers=tuple(str(v) for v in values) if values is not None else None,
        )


def settings_for(
    parent: RunInfo | None, alpha: float | None = None, margin: float | None = None
) -> tuple[Settings, list[str]]:
    """The settings a training command records with its sweep, and notes for the user.

    A new sweep: the flags, else the defaults. An existing one: what it recorded where a
    flag is left out; a flag that changes a recorded value updates a plain sweep (a note
    says so) and is refused (UserError) on a sweep whose seeds were added until clear.
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
    if changed and before.sequential:
        flag, old, new = changed[0]
        raise UserError(
            f"{parent.name} added seeds until clear with {flag} {old:g}: its looks cannot be "
            f"decided again with {flag} {new:g}; leave {flag} out (`sweep table {flag} {new:g}` "
            "shows the table that way without recording it)"
        )
    notes = [
        f"{flag} {new:g} replaces the {old:g} recorded with {parent.name}; its table is decided "
        f"with {new:g} from now on"
        for flag, old, new in changed
    ]
    return Settings.recorded(parent, alpha, margin), notes


def ci_label(level: float) -> str:
    """`95% CI` for a (1 - level) interval at level 0.05, `90% CI` at 0.1."""
    return f"{ci_percent(level)} CI"


def ci_percent(level: float) -> str:
    return f"{round(100 * (1 - level), 2):g}%"
