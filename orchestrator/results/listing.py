"""`sweep list`: what is recorded in an experiment, newest first: baselines and sweeps with
their ids, dates, states and best val loss, and for a sweep the baseline seeds its attached
table used, marked `stale` when the baseline has gained seeds since (`sweep table` decides
it again on all of them; the attached table.md stays as it was)."""

from __future__ import annotations

import datetime as _dt
import math

from .. import tracking as T
from ..tracking import Role


def table_seeds(sweep: T.RunInfo, baselines: dict[str, T.RunInfo]) -> str:
    """`seeds 1,2,3`, or `seeds 1,2,3: stale, baseline +4,5` once the baseline gained seeds
    since the sweep's table was attached; blank without a recorded table."""
    raw = sweep.tags.get(T.TAG_TABLE_SEEDS)
    if raw is None:
        return ""
    used = {int(s) for s in raw.split(",") if s.strip().isdigit()}
    text = f"seeds {raw}"
    baseline = baselines.get(sweep.tags.get(T.TAG_BASELINE, ""))
    if baseline is None:
        return text
    gained = sorted(set(T.baseline_seeds(baseline)) - used)
    return text + (f": stale, baseline +{','.join(map(str, gained))}" if gained else "")


def rows(tracker: T.Tracker) -> list[dict[str, str]]:
    out = []
    runs = T.runs_with_role(tracker, (Role.BASELINE, *T.SWEEP_ROLES))
    baselines = {r.run_id: r for r in runs if r.tags.get(T.TAG_ROLE) == Role.BASELINE}
    for run in runs:
        if run.parent_id is not None:
            continue
        role = Role(run.tags[T.TAG_ROLE])
        table = ""
        if role is Role.BASELINE:
            loss = run.metrics.get("best_val_loss", math.nan)
            detail = f"seeds {T.seeds_label(run)}"
        else:
            table = table_seeds(run, baselines)
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
                "table": table,
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
