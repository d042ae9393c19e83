"""One knob at a time against the recorded baseline.

Each value is a nested child run whose config is the baseline's recorded config with only
the knob changed. Re-running the same command resumes: finished runs with the same config
and seed are kept, runs left RUNNING by a dead process are ended KILLED and trained again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any

from model.errors import ConfigError

from . import tracking as T
from .baseline import baseline_config, comparison_seeds, precision_note
from .config import RunConfig, config_params, heads_note, notes
from .errors import UserError
from .estimate import say_estimate
from .knobs import Knob, default_values, knob_or_error, value_label
from .progress import Progress
from .results.settings import Settings, settings_for
from .runner import Outcome, Runner, parent_run
from .tracking import Role, RunState


@dataclass
class Plan:
    value: str
    seed: int
    name: str
    cfg: RunConfig | None  # None: the baseline stands for this value


def plan_ablation(
    base: RunConfig,
    knob: Knob,
    raw_values: list[Any],
    seeds: list[int],
    warnings: list[str] | None = None,
) -> list[Plan]:
    """Validate every value before anything trains; what trains but not quite as asked (a
    width that forces another n_head, warmup longer than the run) goes to `warnings`."""
    plans: list[Plan] = []
    seen: set[str] = set()
    for raw in raw_values:
        try:
            value = knob.parse(raw)
            changes = knob.changes(value, base)
            cfg0 = base.replace(**changes)
        except ConfigError as e:
            raise UserError(f"--values {knob.name}={raw}: {e.message}") from None
        text = value_label(knob, value)
        if text in seen:
            continue
        seen.add(text)
        if warnings is not None:
            if knob.name != "n_head":
                heads = heads_note(cfg0.gpt.n_embed, base.gpt.n_head, cfg0.gpt.n_head)
                warnings += [f"{knob.name}={text}: {heads}"] if heads else []
            warnings += [f"{knob.name}={text}: {n}" for n in notes(cfg0) if n not in notes(base)]
        same = cfg0.config_hash() == base.config_hash()
        for s in seeds:
            name = f"{knob.name}={text}" + (f"/seed={s}" if len(seeds) > 1 else "")
            plans.append(Plan(text, s, name, None if same else cfg0.replace(seed=s)))
    return plans


def split_values(values: str | None) -> list[str] | None:
    if values is None:
        return None
    items = [v.strip() for v in values.split(",") if v.strip()]
    if not items:
        raise UserError("--values is empty; give a comma-separated list such as 0.0,0.2")
    return items


@dataclass
class AblationResult:
    parent_id: str
    trained: list[Outcome]
    skipped: list[str]
    stand_ins: list[str]
    looks: int = 0  # seeds-until-clear looks taken (0: a fixed number of seeds)
    notes: list[str] = field(default_factory=list)  # e.g. a --margin that replaced the recorded


def open_parent(
    tracker: T.Tracker,
    knob: Knob,
    baseline: T.RunInfo,
    base: RunConfig,
    settings: Settings,
    progress: Progress,
) -> tuple[str, list[T.RunInfo]]:
    """The ablation's parent run (created, or reopened to resume) and its children so far."""
    parent = T.find_ablation(tracker, knob.name, baseline.run_id)
    if parent is None:
        tags = {
            T.TAG_ROLE: Role.ABLATION,
            T.TAG_KNOB: knob.name,
            T.TAG_BASELINE: baseline.run_id,
            T.TAG_BASELINE_VALUE: knob.current(base),
            **settings.tags(),
        }
        mine = tracker.create_run(f"ablate:{knob.name}", tags=tags)
        # the baseline's config and the knob as params: the runs table reads at a glance
        tracker.log_params(mine, {**config_params(baseline.params), "ablate.knob": knob.name})
        # Two `sweep ablate` of one knob started at once both create a parent: the earliest
        # stays, the other is removed, so both train into one sweep (and each run once).
        first = earliest(
            tracker.search(
                f"tags.`{T.TAG_ROLE}` = '{Role.ABLATION}' and tags.`{T.TAG_KNOB}` = '{knob.name}' "
                f"and tags.`{T.TAG_BASELINE}` = '{baseline.run_id}'"
            )
        )
        if first is None or first.run_id == mine:
            return mine, []
        tracker.delete_run(mine)
        parent = first
    if parent.state is not RunState.RUNNING or T.orphaned(parent):
        tracker.reopen(parent.run_id)
    tracker.set_tags(parent.run_id, settings.tags())
    existing = tracker.children(parent.run_id)
    for run in T.reap_stale(tracker, existing):
        progress.say(
            f"{run.name}: was left RUNNING by a process that died; ended as KILLED, training it again"
        )
    return parent.run_id, existing


def earliest(runs: list[T.RunInfo]) -> T.RunInfo | None:
    return min(runs, key=lambda r: (r.start_time, r.run_id), default=None)


def others_running(tracker: T.Tracker, parent_id: str) -> bool:
    """Another live process still trains into this sweep (it will end the parent)."""
    return any(
        r.state is RunState.RUNNING
        and not T.orphaned(r)
        and r.tags.get(T.TAG_PID) != str(os.getpid())
        for r in tracker.children(parent_id)
    )


def sequential_settings(
    settings: Settings, n0: int, max_seeds: int | None, labels: list[str]
) -> Settings:
    """The looks of --until-clear: from the seeds there are now to --max-seeds, over the
    values `labels`. A resumed sweep keeps the looks and values it started with (changing
    them would change the levels of looks already taken)."""
    if settings.sequential:
        top = settings.sequential[1]
        if max_seeds is not None and max_seeds != top:
            raise UserError(
                f"this ablation adds seeds up to {top} (--max-seeds {top}); it cannot change now"
            )
        new = [v for v in labels if settings.covers is not None and v not in settings.covers]
        if new:
            raise UserError(
                f"this ablation added seeds until clear to {', '.join(settings.covers or ())}; "
                f"{', '.join(new)} cannot join its looks now (that would change looks already "
                "taken): leave out --until-clear to train it judged on its own"
            )
        return settings
    top = DEFAULT_MAX_SEEDS if max_seeds is None else max_seeds
    if n0 < 2:
        raise UserError(
            "--until-clear compares seed by seed and needs a baseline with 2 or more seeds: "
            "record one with `sweep baseline --seeds 2`"
        )
    if top < n0:
        raise UserError(f"--max-seeds {top} is below the {n0} seeds there are already")
    return replace(settings, sequential=(n0, top), covers=tuple(dict.fromkeys(labels)))


DEFAULT_MAX_SEEDS = 10


def run_ablation(
    tracker: T.Tracker,
    knob_name: str,
    values: list[Any] | None = None,
    seeds: int | None = None,
    baseline_id: str | None = None,
    progress: Progress | None = None,
    *,
    margin: float | None = None,
    alpha: float | None = None,
    until_clear: bool = False,
    max_seeds: int | None = None,
    threads: int | None = None,
) -> AblationResult:
    """Train each value against the baseline (resuming what is there), and with
    `until_clear` add seeds to the baseline and the undecided values until every row has
    a verdict or `max_seeds` is reached. `margin`/`alpha` left out: what the sweep recorded
    (a new sweep: the defaults); see `results.settings.settings_for`."""
    progress = progress or Progress(live=False)
    knob = knob_or_error(knob_name)
    if max_seeds is not None and not until_clear:
        raise UserError("--max-seeds goes with --until-clear")
    baseline = T.find_baseline(tracker, baseline_id)
    base = baseline_config(baseline)
    if threads is not None:  # how it runs, not what it trains: outside the config hash
        base = base.replace(threads=threads)
    if note := precision_note(tracker, baseline, base):
        progress.warn(note)
    settings, notes = settings_for(
        T.find_ablation(tracker, knob.name, baseline.run_id), alpha, margin
    )
    base_seeds = T.baseline_seeds(baseline)
    seed_values = comparison_seeds(baseline, base, seeds)
    raw_values = values if values is not None else default_values(knob.name)
    warnings: list[str] = []
    plans = plan_ablation(base, knob, raw_values, seed_values, warnings)
    if until_clear:
        if seeds is not None and seed_values != base_seeds:
            raise UserError(
                "--until-clear uses the baseline's seeds and adds to both sides: leave out --seeds"
            )
        resumed = settings.sequential is not None
        labels = [] if resumed and values is None else [p.value for p in plans if p.cfg]
        settings = sequential_settings(settings, len(base_seeds), max_seeds, labels)
        if resumed and settings.covers is not None:
            # every value of its looks, from the first look's seeds on: the looks add the rest
            n0 = settings.sequential[0]  # type: ignore[index]
            plans = plan_ablation(base, knob, list(settings.covers), sorted(base_seeds)[:n0])
    for w in warnings:
        progress.warn(w)
    for n in notes:
        progress.say(f"note: {n}")

    runner = Runner(tracker, progress, expect_sha256=baseline.params.get("dataset.sha256"))
    parent_id, existing = open_parent(tracker, knob, baseline, base, settings, progress)
    values_tag = ",".join(dict.fromkeys(p.value for p in plans))
    tracker.set_tags(parent_id, {"sweep.values": values_tag})
    # The config hash covers the seed: a (config, seed) is found whatever its run was named
    # (`dropout=0.1` with one seed, `dropout=0.1/seed=1` with several) and never trained twice.
    done = {r.tags.get(T.TAG_CONFIG_HASH) for r in existing if r.state is RunState.COMPLETE}
    todo = [p for p in plans if p.cfg is not None and p.cfg.config_hash() not in done]
    skipped = [p.name for p in plans if p.cfg is not None and p not in todo]
    stand_ins = sorted({p.value for p in plans if p.cfg is None})
    for v in stand_ins:
        progress.say(f"{knob.name}={v} is the baseline's value: the baseline stands for it")
    for name in skipped:
        progress.say(f"{name}: already finished with the same config, not trained again")

    if todo:
        say_estimate(runner, todo[0].cfg, len(todo))
    progress.sweep(len(todo))
    trained: list[Outcome] = []
    looks = 0
    with parent_run(tracker, parent_id):
        for p in todo:
            trained.append(train_plan(runner, knob, p, parent_id))
        if until_clear:
            from .until_clear import add_seeds_until_clear

            configs = {p.value: p.cfg for p in plans if p.cfg is not None}

            def train(value: str, seed: int) -> Outcome:
                name = f"{knob.name}={value}/seed={seed}"
                plan = Plan(value, seed, name, configs[value].replace(seed=seed))
                return train_plan(runner, knob, plan, parent_id)

            more, looks = add_seeds_until_clear(
                runner, baseline, parent_id, knob.name, train, settings
            )
            trained += more
        from .results.table import attach_table, sweep_table

        attach_table(tracker, parent_id, sweep_table(tracker, tracker.get_run(parent_id)))
    if others_running(tracker, parent_id):
        progress.say("another process still trains into this sweep: it ends the parent run")
    else:
        tracker.end_run(parent_id, RunState.COMPLETE)
    return AblationResult(parent_id, trained, skipped, stand_ins, looks, notes)


def train_plan(runner: Runner, knob: Knob, plan: Plan, parent_id: str) -> Outcome:
    tags = {T.TAG_ROLE: Role.ABLATION_RUN, T.TAG_KNOB: knob.name, T.TAG_VALUE: plan.value}
    return runner.train(plan.cfg, plan.name, parent_id=parent_id, tags=tags)
