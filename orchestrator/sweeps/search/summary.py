"""The end of a search: the table, the best trial and Optuna's figures on the parent run, the
parent run closed by the last worker, and the lines `sweep search` prints."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ... import tracking as T
from ...config import baseline_command
from ...studies import storage_label
from .attrs import ATTR_SURPLUS
from .budget import counted
from .space import params_label, trial_config

if TYPE_CHECKING:
    from ...results.table import Table
    from .context import SearchContext


@dataclass
class SearchResult:
    study_name: str
    parent_id: str
    storage: str  # for people: the journal's path or the URL without its password
    table: Table
    best: dict[str, Any] | None  # number, value, params, command
    plots: list[Path]
    notes: list[str]
    counts: dict[str, int]  # complete, pruned, fail, ... and retried
    closed: bool  # whether this process ended the parent run
    jobs: list[str] = field(default_factory=list)  # --detach: the Slurm jobs left running


def idle(ctx: SearchContext) -> bool:
    """No other worker runs a trial of the study (the last one to finish closes the parent)."""
    from optuna.trial import TrialState

    try:
        running = ctx.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    except Exception:  # the storage is gone (e.g. the database): close it anyway
        running = []
    return not running


def close_parent_if_idle(ctx: SearchContext, state: T.RunState, reason: str | None = None) -> bool:
    """End the parent run unless other workers still run trials (the last one closes it)."""
    if not idle(ctx):
        return False
    ctx.sweep.end(state, reason)
    return True


def trial_counts(trials: list) -> dict[str, int]:
    """Counted trials per Optuna state (lower-case names), and how many were retried."""
    from optuna.trial import TrialState

    live = counted(trials)
    counts = {s.name.lower(): sum(t.state == s for t in live) for s in TrialState}
    surplus = sum(bool(t.user_attrs.get(ATTR_SURPLUS)) for t in trials)
    counts["retried"] = len(trials) - len(live) - surplus
    return counts


def finish(ctx: SearchContext, storage: str | None, notes: list[str], plots: bool) -> SearchResult:
    tracker = ctx.tracker
    counts = trial_counts(ctx.study.get_trials(deepcopy=False))
    best = best_trial(ctx)
    if best is not None:
        tracker.set_tags(
            ctx.parent_id,
            {T.TAG_BEST_TRIAL: str(best["number"]), T.TAG_BEST_COMMAND: best["command"]},
        )
        tracker.log_text(ctx.parent_id, best["command"] + "\n", "best_command.txt")
    written: list[Path] = []
    if plots:
        written, plot_notes = write_plots(ctx)
        notes.extend(plot_notes)
    closed = idle(ctx)
    table = ctx.sweep.close(idle=closed)
    if not closed:
        notes.append("other workers still run trials: the last one to finish closes the parent run")
    return SearchResult(
        study_name=ctx.study.study_name,
        parent_id=ctx.parent_id,
        storage=storage_label(storage, tracker.store_dir),
        table=table,
        best=best,
        plots=written,
        notes=notes,
        counts=counts,
        closed=closed,
    )


def detached(ctx: SearchContext, storage: str | None, notes: list[str], jobs: list[str]):
    """The search as it stands when its worker jobs go on without this command."""
    return SearchResult(
        study_name=ctx.study.study_name,
        parent_id=ctx.parent_id,
        storage=storage_label(storage, ctx.tracker.store_dir),
        table=ctx.sweep.table(),
        best=None,
        plots=[],
        notes=notes,
        counts=trial_counts(ctx.study.get_trials(deepcopy=False)),
        closed=False,
        jobs=jobs,
    )


def best_trial(ctx: SearchContext) -> dict[str, Any] | None:
    try:
        t = ctx.study.best_trial
    except ValueError:  # no complete trial yet
        return None
    cfg = trial_config(ctx.base, t.params)
    point = {p.name: ctx.base.to_flat()[p.name] for p in ctx.space.params}
    return {
        "number": t.number,
        "value": t.value,
        "params": dict(t.params),
        "baseline_params": point,
        "command": baseline_command(cfg),
    }


def write_plots(ctx: SearchContext) -> tuple[list[Path], list[str]]:
    """Optuna's figures (results.plots.figures_optuna): PNGs next to the store, in the folder
    `sweep plot` uses for the same search (sweep-plots/search-<study>-<id>/), and on the
    parent run (plots/)."""
    from ...results.plots import default_dir, figures_optuna, save_png
    from ..attach import attach_figures

    out_dir = default_dir(ctx.tracker, ctx.tracker.get_run(ctx.parent_id))
    figs, notes = figures_optuna(ctx.study)
    written = [save_png(fig, out_dir / f"{name}.png") for name, fig in figs]
    attach_figures(ctx.tracker, ctx.parent_id, written)
    return written, notes


def _baseline_value(table: Table | None) -> float | None:
    """Trial 0's best val loss: the baseline's own values at the trials' seed."""
    if table is None:
        return None
    zero = next((r for r in table.variants if r.value.startswith("trial-0:")), None)
    if zero is None or zero.best_val_loss != zero.best_val_loss:  # NaN
        return None
    return zero.best_val_loss


def report_lines(result: SearchResult) -> list[str]:
    if result.jobs:
        return detached_lines(result)
    c = result.counts
    retried = f", {c['retried']} retried after a lost worker" if c.get("retried") else ""
    lines = [
        f"study '{result.study_name}' ({result.storage}): {c.get('complete', 0)} complete, "
        f"{c.get('pruned', 0)} pruned, {c.get('fail', 0)} failed{retried}",
    ]
    if result.best is not None:
        b = result.best
        lines.append(
            f"lowest val loss: trial-{b['number']} best_val_loss {b['value']:.4f} "
            f"({params_label(b['params'])})"
        )
        base = _baseline_value(result.table)
        if b["params"] == b.get("baseline_params") or (base is not None and b["value"] >= base):
            lines.append("no trial beat the baseline's own run at the same seed: keep the baseline")
        else:
            lines.append(
                "a single-seed draw from many trials is a candidate, not a result (its val loss "
                f"is biased low): confirm it on seeds the search never trained: "
                f"sweep confirm --sweep {result.parent_id} --top 3"
            )
    lines.extend(f"plot: {p}" for p in result.plots)
    lines.extend(f"note: {n}" for n in result.notes)
    lines.append(
        f"sweep run {result.parent_id}; `sweep table --sweep {result.parent_id}` prints this "
        "table again"
    )
    return lines


def detached_lines(result: SearchResult) -> list[str]:
    array = result.jobs[0].split("_")[0]
    return [
        f"detached: {len(result.jobs)} worker job(s) of array {array} run study "
        f"'{result.study_name}' ({result.storage}) without this command; the last to finish "
        "closes the parent run",
        *(f"note: {n}" for n in result.notes),
        f"progress: `sweep list`, `sweep table --sweep {result.parent_id}`; stop them: "
        f"`scancel {array}`",
    ]
