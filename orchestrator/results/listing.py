"""`sweep list`: what is recorded in an experiment, newest first: baselines and sweeps with
their ids, dates, states and best val loss."""

from __future__ import annotations

import datetime as _dt
import math

from .. import tracking as T
from ..tracking import Role


def rows(tracker: T.Tracker) -> list[dict[str, str]]:
    out = []
    for run in T.runs_with_role(tracker, (Role.BASELINE, *T.SWEEP_ROLES)):
        if run.parent_id is not None:
            continue
        role = Role(run.tags[T.TAG_ROLE])
        if role is Role.BASELINE:
            loss = run.metrics.get("best_val_loss", math.nan)
            detail = f"seeds {T.seeds_label(run)}"
        else:
            children = tracker.children(run.run_id)
            done = [c.metrics["best_val_loss"] for c in children if "best_val_loss" in c.metrics]
            loss = min(done) if done else math.nan
            what = run.tags.get(T.TAG_KNOB) or run.tags.get(T.TAG_STUDY, "")
            detail = f"{what}: {len(children)} runs"
        started = _dt.datetime.fromtimestamp(run.start_time / 1000).strftime("%Y-%m-%d %H:%M")
        out.append(
            {
                "kind": str(role),
                "name": run.name,
                "run_id": run.run_id,
                "started": started,
                "state": str(run.state),
                "what": detail,
                "best_val_loss": "" if math.isnan(loss) else f"{loss:.4f}",
            }
        )
    return out


def render(items: list[dict[str, str]]) -> str:
    from tabulate import tabulate

    if not items:
        return "nothing recorded yet: run `sweep baseline`"
    return tabulate(
        [list(r.values()) for r in items],
        headers=list(items[0]),
        tablefmt="simple",
        disable_numparse=True,
    )
