"""One knob at a time against the recorded baseline: the plan.

Each value is a nested child run whose config is the baseline's recorded config with only
the knob changed, one per seed. The Sweep (`sweep.py`) does the rest: resume, reuse, train,
the table. With `--until-clear`, seeds are then added one at a time to the baseline and the
undecided values (`until_clear.py`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from model.errors import ConfigError

from .. import tracking as T
from ..config import RunConfig, config_params, heads_note, notes
from ..errors import UserError
from ..execution.env import RunEnv
from ..execution.spec import Outcome, RunSpec
from ..results.settings import Settings, settings_for
from ..results.verdicts import Verdict
from ..tracking import Role
from .baseline import against, comparison_seeds
from .knobs import Knob, default_values, knob_or_error, value_label
from .sweep import Sweep
from .until_clear import UntilClear

if TYPE_CHECKING:
    from ..results.table import Table

DEFAULT_MAX_SEEDS = 10


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
            cfg0 = base.replace(**knob.changes(value, base))
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


def spec_of(knob: Knob, plan: Plan) -> RunSpec:
    assert plan.cfg is not None
    tags = {T.TAG_ROLE: Role.ABLATION_RUN, T.TAG_KNOB: knob.name, T.TAG_VALUE: plan.value}
    return RunSpec(plan.cfg, plan.name, tags)


def seed_spec(knob: Knob, configs: dict[str, RunConfig], value: str, seed: int) -> RunSpec:
    """The spec of one more seed of a value (a look of --until-clear)."""
    cfg = configs[value].replace(seed=seed)
    return spec_of(knob, Plan(value, seed, f"{knob.name}={value}/seed={seed}", cfg))


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
    table: Table
    trained: list[Outcome]  # trained (or linked to another sweep's run) by this command
    skipped: list[str]  # runs the sweep already had
    stand_ins: list[str]
    notes: list[str] = field(default_factory=list)  # e.g. a --margin that replaced the recorded
    next_step: str | None = None  # what to run to decide the undecided rows


def next_step(knob: Knob, table: Table, baseline_id: str | None) -> str | None:
    """For a plain ablation with undecided rows: the --until-clear command that settles them."""
    undecided = [r.value for r in table.rows if r.verdict is Verdict.INCONCLUSIVE]
    if not undecided:
        return None
    pick = f" --baseline-id {baseline_id}" if baseline_id else ""
    return (
        f"{len(undecided)} value(s) undecided ({', '.join(undecided)}); add seeds until each is "
        f"decided: sweep ablate --knob {knob.name} --values {','.join(undecided)}{pick} "
        "--until-clear"
    )


def until_clear_plan(
    baseline: T.RunInfo, knob: Knob, plans: list[Plan], seeds: int | None, max_seeds: int | None
) -> UntilClear:
    """What --until-clear adds seeds to: every value this command trains, from the baseline's
    seeds on, up to --max-seeds (checked before anything trains)."""
    n0 = len(T.baseline_seeds(baseline))
    top = DEFAULT_MAX_SEEDS if max_seeds is None else max_seeds
    if seeds is not None and seeds != n0:
        raise UserError(
            "--until-clear uses the baseline's seeds and adds to both sides: leave out --seeds"
        )
    if n0 < 2 or not T.is_seeded(baseline):
        raise UserError(
            "--until-clear compares seed by seed and needs a baseline with 2 or more seeds: "
            "record one with `sweep baseline --seeds 2`"
        )
    if top < n0:
        raise UserError(f"--max-seeds {top} is below the {n0} seeds there are already")
    configs = {p.value: p.cfg for p in plans if p.cfg is not None}
    return UntilClear(
        values=list(configs),
        spec=functools.partial(seed_spec, knob, configs),
        max_seeds=top,
        label=lambda v: f"{knob.name}={v}",
    )


def _open(
    env: RunEnv,
    knob: Knob,
    key: dict[str, str],
    settings: Settings,
    baseline: T.RunInfo,
    base: RunConfig,
    plans: list[Plan],
) -> Sweep:
    """The ablation's sweep (created, or resumed), with the values it holds."""
    sweep = Sweep.open(
        env,
        f"ablate:{knob.name}",
        key,
        settings=settings,
        tags={T.TAG_BASELINE_VALUE: knob.current(base)},
        # the baseline's config and the knob as params: the runs table reads at a glance
        params={**config_params(baseline.params), "ablate.knob": knob.name},
    )
    values = ",".join(dict.fromkeys(p.value for p in plans))
    env.tracker.set_tags(sweep.run_id, {T.TAG_VALUES: values})
    return sweep


def run_ablation(
    env: RunEnv,
    knob_name: str,
    values: list[Any] | None = None,
    seeds: int | None = None,
    baseline_id: str | None = None,
    *,
    margin: float | None = None,
    alpha: float | None = None,
    until_clear: bool = False,
    max_seeds: int | None = None,
) -> AblationResult:
    """Train each value against the baseline (resuming what is there), and with
    `until_clear` add seeds to the baseline and the undecided values until every row is
    decided or has `max_seeds` seeds. `margin`/`alpha` left out: what the sweep recorded
    (a new sweep: the defaults); see `results.settings.settings_for`."""
    knob = knob_or_error(knob_name)
    if max_seeds is not None and not until_clear:
        raise UserError("--max-seeds goes with --until-clear")
    baseline, base = against(env, baseline_id)
    key = {T.TAG_ROLE: Role.ABLATION, T.TAG_KNOB: knob.name, T.TAG_BASELINE: baseline.run_id}
    settings, notes = settings_for(Sweep.find(env.tracker, key), alpha, margin)
    seed_values = comparison_seeds(baseline, base, None if until_clear else seeds)
    raw_values = values if values is not None else default_values(knob.name)
    warnings: list[str] = []
    plans = plan_ablation(base, knob, raw_values, seed_values, warnings)
    more = until_clear_plan(baseline, knob, plans, seeds, max_seeds) if until_clear else None
    for w in warnings:
        env.progress.warn(w)
    for n in notes:
        env.progress.say(f"note: {n}")

    sweep = _open(env, knob, key, settings, baseline, base, plans)
    stand_ins = sorted({p.value for p in plans if p.cfg is None})
    for v in stand_ins:
        env.progress.say(f"{knob.name}={v} is the baseline's value: the baseline stands for it")
    with sweep.guard():
        outcomes = sweep.train([spec_of(knob, p) for p in plans if p.cfg is not None])
        if more is not None:
            from .until_clear import add_seeds_until_clear

            outcomes += add_seeds_until_clear(sweep, baseline.run_id, more)
        table = sweep.close()
    trained = [o for o in outcomes if o.new]
    skipped = [o.name for o in outcomes if not o.new]
    hint = None if until_clear else next_step(knob, table, baseline_id)
    return AblationResult(sweep.run_id, table, trained, skipped, stand_ins, notes, hint)
