"""One trial: the baseline's config with the sampled keys changed, trained as the nested
MLflow run `trial-<number>` of the search's parent run.

The val loss of each eval is reported to Optuna (`OptunaHooks`); a pruned trial ends PRUNED
in Optuna and RunState.PRUNED in MLflow; a diverging one fails alone (FAIL, with its reason).
A trial whose config a finished run already has (the baseline's own values, a repeated
point, a point an ablation trained) is linked to that run (`sweeps/reuse.py`), not trained
again; a trial beyond the budget fails at once, untrained (surplus), and so does one whose config
the trainer refuses (a corner of the space too big for the device's memory).
"""

from __future__ import annotations

import contextlib
import math
from typing import TYPE_CHECKING

from model.errors import ConfigError
from model.train import TrainerHooks

from ... import tracking as T
from ...errors import Interrupted, UserError, stop_reason
from ...execution.spec import RunSpec
from .attrs import ATTR_REASON, ATTR_REUSED, ATTR_RUN, ATTR_SURPLUS, ATTR_WORKER
from .budget import budget, counted, retried_number
from .recovery import worker_tag
from .space import params_label, trial_config

if TYPE_CHECKING:
    from ...execution.processes import SignalGate
    from .context import SearchContext


class OptunaHooks(TrainerHooks):
    """val_loss at each eval -> the Optuna trial; the pruner's decision -> TrialPruned."""

    def __init__(self, trial, max_steps: int):
        self.trial = trial
        self.max_steps = max_steps

    def on_eval(self, step: int, metrics: dict[str, float]) -> None:
        import optuna

        value = metrics["val_loss"]
        self.trial.report(value, step)
        if step < self.max_steps and self.trial.should_prune():
            raise optuna.TrialPruned(f"val_loss {value:.4f} behind the other trials at this step")


def objective(ctx: SearchContext, trial, gate: SignalGate | None = None) -> float:
    """The function Optuna optimizes (bind `ctx` and `gate` with functools.partial). The
    trial names its worker first; a signal held back by the `gate` since Optuna created the
    trial acts after that, so the trial ends FAIL in any case and its worker is known."""
    trial.set_user_attr(ATTR_WORKER, worker_tag(trial.number))
    try:
        with gate.open() if gate is not None else contextlib.nullcontext():
            return run_trial(ctx, trial)
    except Interrupted as e:  # Optuna records FAIL for a KeyboardInterrupt, then re-raises it
        raise KeyboardInterrupt(str(e)) from None  # named: the worker exits 128 + the signal


def run_trial(ctx: SearchContext, trial) -> float:
    n = trial.number
    trials = ctx.study.get_trials(deepcopy=False)
    earlier = [t for t in counted(trials) if t.number < n]
    if len(earlier) >= ctx.n_trials:
        trial.set_user_attr(ATTR_SURPLUS, True)
        trial.set_user_attr(ATTR_REASON, f"surplus: the study already had {ctx.n_trials} trials")
        return math.nan
    params = {p.name: p.suggest(trial) for p in ctx.space.params}
    ctx.progress.say(f"trial-{n}: {params_label(params)} ({standing(trials, ctx.n_trials)})")
    tags = {
        T.TAG_ROLE: T.Role.SEARCH_TRIAL,
        T.TAG_TRIAL: str(n),
        T.TAG_VALUE: f"trial-{n}: {params_label(params)}",
        T.TAG_STUDY: ctx.study.study_name,
    }
    me = next((t for t in trials if t.number == n), None)
    retry_of = None if me is None else retried_number(me)
    if retry_of is not None:
        tags[T.TAG_RETRY_OF] = str(retry_of)
    run_id = ctx.tracker.create_run(f"trial-{n}", parent_id=ctx.parent_id, tags=tags)
    try:
        return train_trial(ctx, trial, run_id, params, tags)
    except BaseException as e:  # e.g. the journal lost before training: never left RUNNING
        if ctx.tracker.get_run(run_id).state is T.RunState.RUNNING:
            ctx.tracker.end_run(run_id, ending_state(e), stop_reason(e))
        raise


def standing(trials: list, n_trials: int) -> str:
    """The study so far, said as a trial starts: "3 of 8 finished, best so far trial-2
    2.6852 (dropout=0.1)"."""
    from optuna.trial import TrialState

    done = budget(trials).finished
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    if not complete:
        return f"{done} of {n_trials} finished"
    best = min(complete, key=lambda t: t.value)
    return (
        f"{done} of {n_trials} finished, best so far trial-{best.number} "
        f"{best.value:.4f} ({params_label(best.params)})"
    )


def ending_state(e: BaseException) -> T.RunState:
    interrupted = isinstance(e, (KeyboardInterrupt, Interrupted))
    return T.RunState.KILLED if interrupted else T.RunState.FAILED


def train_trial(ctx: SearchContext, trial, run_id: str, params: dict, tags: dict) -> float:
    """Train the trial's config into its run `run_id` (or link a finished run of it)."""
    import optuna

    n = trial.number
    trial.set_user_attr(ATTR_RUN, run_id)
    try:
        cfg = trial_config(ctx.base, params)
        ctx.env.prepare(cfg)  # the trainer's checks and the memory check, once per config
    except (ConfigError, UserError) as e:  # e.g. a corner of the space too big to train
        reason = f"invalid config: {e.message if isinstance(e, ConfigError) else e}"
        ctx.tracker.end_run(run_id, T.RunState.FAILED, reason)
        trial.set_user_attr(ATTR_REASON, reason)
        ctx.progress.say(f"trial-{n}: failed ({reason})")
        return math.nan
    spec = RunSpec(
        cfg,
        f"trial-{n}",
        tags,
        hooks=(OptunaHooks(trial, cfg.train.max_steps),),
        stop_on=(optuna.TrialPruned,),
        run_id=run_id,
    )
    # a config some finished run already has (the baseline's own values at its first seed,
    # a point of an earlier grid or ablation, a repeated point) is linked, not trained
    (out,) = ctx.sweep.train([spec], estimate=False)
    if out.reused_from is not None:
        trial.set_user_attr(ATTR_REUSED, out.reused_from)
    if not out.state.has_result:
        trial.set_user_attr(ATTR_REASON, out.reason or str(out.state))
        return math.nan  # Optuna records FAIL; the study goes on
    return float(out.summary["best_val_loss"])
