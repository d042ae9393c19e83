"""Never train the same run twice: a need met by a finished run is linked to it.

A run's identity is its config hash (which covers the seed and the corpus) and what trained
it: the training code's version (with torch's), the device and the precision `amp` resolved
to. Before a spec trains, a FINISHED run of the experiment with the same identity, under any
role (a baseline seed, an ablation value, a search trial, a confirmation), stands for it: the
spec gets a link run (tag `sweep.reused_from`, state `reused`) that carries the source's
params, summary metrics and eval curves, so tables, plots and the UI read it like any run,
while its checkpoint and samples stay with the source (`sweep sample` follows the link).
`--retrain` trains anew instead.
"""

from __future__ import annotations

from .. import tracking as T
from ..execution.env import Prepared, RunEnv
from ..execution.runner import code_version
from ..execution.spec import Outcome, RunSpec
from ..tracking import RunState

EVAL_KEYS = ("train_loss", "val_loss", "val_ppl", "lr", "tokens_per_s")
IDENTITY_TAGS = (T.TAG_CONFIG_HASH, T.TAG_SEED, T.TAG_DEVICE, T.TAG_AMP, T.TAG_CODE_VERSION)


def reusable(env: RunEnv, ready: Prepared, exclude: str | None = None) -> T.RunInfo | None:
    """The earliest finished run of the experiment that trained exactly this (config, seed,
    corpus) with this code, on this kind of device and precision; None if there is none (or
    the command was given --retrain). `exclude`: a sweep whose own runs do not count."""
    if env.retrain:
        return None
    runs = env.tracker.search(
        f"tags.`{T.TAG_CONFIG_HASH}` = '{ready.cfg.config_hash()}' "
        f"and tags.`{T.TAG_STATE}` = '{RunState.COMPLETE}'",
        ["attributes.start_time ASC"],
    )
    want = {T.TAG_CODE_VERSION: code_version(), T.TAG_DEVICE: ready.device, T.TAG_AMP: ready.amp}
    for run in runs:
        if exclude is not None and run.parent_id == exclude:
            continue
        if all(run.tags.get(k) == v for k, v in want.items()) and T.has_result(run):
            return run
    return None


def link(env: RunEnv, spec: RunSpec, source: T.RunInfo, parent_id: str | None) -> Outcome:
    """Record `spec` as met by `source`: a link run (the spec's own if it has one) with the
    source's params, summary metrics and eval curves, ended `reused`."""
    tracker = env.tracker
    tags = {
        **{k: source.tags[k] for k in IDENTITY_TAGS if k in source.tags},
        **spec.tags,
        T.TAG_REUSED_FROM: source.run_id,
        T.TAG_REUSED_NAME: source.name,
    }
    run_id = spec.run_id
    if run_id is None:
        run_id = tracker.create_run(spec.name, parent_id=parent_id, tags=tags)
    else:
        tracker.set_tags(run_id, tags)
    tracker.log_params(run_id, source.params)
    for key in EVAL_KEYS:
        tracker.log_history(run_id, key, tracker.metric_history(source.run_id, key))
    summary = {k: v for k, v in source.metrics.items() if k not in EVAL_KEYS}
    steps = int(float(source.params.get("max_steps", "0") or 0))
    tracker.log_metrics(run_id, summary, steps)
    reason = f"reused from {source.name} ({source.run_id}): same config, seed, corpus and code"
    tracker.end_run(run_id, RunState.REUSED, reason)
    env.progress.say(
        f"{spec.name}: reused from {source.name} ({source.run_id[:8]}), not trained again"
    )
    return Outcome(run_id, spec.name, RunState.REUSED, dict(source.metrics), reason, source.run_id)
