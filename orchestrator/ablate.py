"""One knob at a time against the recorded baseline.

Each value is a nested child run whose config is the baseline's recorded config with only
the knob changed. Re-running the same command resumes: finished runs with the same config
and seed are kept, runs left RUNNING by a dead process are ended KILLED and trained again.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from model.errors import ConfigError

from . import tracking as T
from .baseline import baseline_config, baseline_seeds
from .config import RunConfig, coerce
from .errors import UserError
from .progress import Progress
from .runner import Outcome, parent_run, train_run


def heads_for(n_embed: int, n_head: int) -> int:
    """The notes' rule: keep n_head when it divides the width, else the largest divisor below it."""
    for h in range(min(n_head, n_embed), 0, -1):
        if n_embed % h == 0:
            return h
    return 1


@dataclass(frozen=True)
class Knob:
    name: str
    help: str
    changes: Callable[[Any, RunConfig], dict[str, Any]]
    current: Callable[[RunConfig], str]
    parse: Callable[[Any], Any]


def _single(key: str, help: str) -> Knob:
    return Knob(
        name=key,
        help=help,
        changes=lambda v, base: {key: v},
        current=lambda cfg: label(getattr_flat(cfg, key)),
        parse=lambda raw: coerce(key, raw),
    )


def getattr_flat(cfg: RunConfig, key: str) -> Any:
    return cfg.to_flat()[key]


def label(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def _parse_depth_width(raw: Any) -> tuple[int, int]:
    text = str(raw).lower().replace(" ", "")
    try:
        depth, width = text.split("x")
        return int(depth), int(width)
    except ValueError:
        raise ConfigError(
            "depth-width", f"depth-width values look like 6x384 (n_layer x n_embed), got {raw!r}"
        ) from None


KNOBS: dict[str, Knob] = {
    k.name: k
    for k in [
        _single("dropout", "dropout probability (the notes: 0.0 to 0.2)"),
        _single("max_steps", "training steps"),
        _single("block_size", "context length"),
        _single("n_layer", "transformer depth"),
        Knob(
            "n_embed",
            "width; n_head is kept when it divides the width, else the largest divisor below it",
            changes=lambda v, base: {"n_embed": v, "n_head": heads_for(v, base.gpt.n_head)},
            current=lambda cfg: str(cfg.gpt.n_embed),
            parse=lambda raw: coerce("n_embed", raw),
        ),
        Knob(
            "depth-width",
            "n_layer x n_embed together, as the notes' 6x384",
            changes=lambda v, base: {
                "n_layer": v[0],
                "n_embed": v[1],
                "n_head": heads_for(v[1], base.gpt.n_head),
            },
            current=lambda cfg: f"{cfg.gpt.n_layer}x{cfg.gpt.n_embed}",
            parse=_parse_depth_width,
        ),
        _single("n_head", "attention heads"),
        _single("lr", "peak learning rate"),
        _single("schedule", "constant or cosine (warmup + cosine to 10%)"),
        _single("warmup_steps", "linear warmup steps"),
        _single("batch_size", "sequences per optimizer step"),
        _single("grad_accum_steps", "micro-batches per optimizer step"),
        _single("amp", "mixed precision: off, bf16, fp16, auto"),
        _single("weight_decay", "AdamW weight decay"),
        _single("grad_clip", "gradient norm clip (0 = off)"),
    ]
}


def knob_or_error(name: str) -> Knob:
    if name not in KNOBS:
        raise UserError(f"unknown knob '{name}'; known knobs: {', '.join(KNOBS)}")
    return KNOBS[name]


def default_values(knob: str) -> list[Any]:
    doc = tomllib.loads(
        resources.files("experiments").joinpath("knobs.toml").read_text(encoding="utf-8")
    )
    values = doc.get("knobs", doc).get(knob)
    if not values:
        raise UserError(
            f"no default values for knob '{knob}' in experiments/knobs.toml; pass --values"
        )
    return list(values)


def value_label(knob: Knob, value: Any) -> str:
    if knob.name == "depth-width":
        return f"{value[0]}x{value[1]}"
    return label(value)


@dataclass
class Plan:
    value: str
    seed: int
    name: str
    cfg: RunConfig | None  # None: the baseline stands for this value


def plan_ablation(
    base: RunConfig, knob: Knob, raw_values: list[Any], seeds: list[int]
) -> list[Plan]:
    """Validate every value before anything trains."""
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


def find_parent(tracker: T.Tracker, knob: str, baseline_id: str) -> T.RunInfo | None:
    runs = tracker.search(
        f"tags.`{T.TAG_ROLE}` = 'ablation' and tags.`{T.TAG_KNOB}` = '{knob}' "
        f"and tags.`{T.TAG_BASELINE}` = '{baseline_id}'"
    )
    return runs[0] if runs else None


@dataclass
class AblationResult:
    parent_id: str
    trained: list[Outcome]
    skipped: list[str]
    stand_ins: list[str]


def run_ablation(
    tracker: T.Tracker,
    knob_name: str,
    values: list[Any] | None = None,
    seeds: int | None = None,
    baseline_id: str | None = None,
    progress: Progress | None = None,
) -> AblationResult:
    progress = progress or Progress(live=False)
    knob = knob_or_error(knob_name)
    if seeds is not None and seeds < 1:
        raise UserError(f"--seeds must be at least 1 (got {seeds})")
    baseline = tracker.find_baseline(baseline_id)
    base = baseline_config(baseline)
    base_seeds = baseline_seeds(baseline)
    seed_values = base_seeds if seeds is None else [base.train.seed + i for i in range(seeds)]
    raw_values = values if values is not None else default_values(knob.name)
    plans = plan_ablation(base, knob, raw_values, seed_values)

    parent = find_parent(tracker, knob.name, baseline.run_id)
    if parent is None:
        parent_id = tracker.create_run(
            f"ablate:{knob.name}",
            tags={
                T.TAG_ROLE: "ablation",
                T.TAG_KNOB: knob.name,
                T.TAG_BASELINE: baseline.run_id,
                "sweep.baseline_value": knob.current(base),
            },
        )
        existing: list[T.RunInfo] = []
    else:
        parent_id = parent.run_id
        tracker.reopen(parent_id)
        existing = tracker.children(parent_id)
        for run in tracker.reap_stale(existing):
            progress.say(
                f"{run.name}: was left RUNNING by a process that died; ended as KILLED, training it again"
            )

    done = {
        (r.name, r.tags.get(T.TAG_CONFIG_HASH))
        for r in existing
        if r.status == "FINISHED" and r.state == "complete"
    }
    todo = [p for p in plans if p.cfg is not None and (p.name, p.cfg.config_hash()) not in done]
    skipped = [p.name for p in plans if p.cfg is not None and p not in todo]
    stand_ins = sorted({p.value for p in plans if p.cfg is None})
    for v in stand_ins:
        progress.say(f"{knob.name}={v} is the baseline's value: the baseline stands for it")
    for name in skipped:
        progress.say(f"{name}: already finished with the same config, not trained again")

    progress.sweep(len(todo))
    trained: list[Outcome] = []
    with parent_run(tracker, parent_id):
        for p in todo:
            trained.append(
                train_run(
                    tracker,
                    p.cfg,
                    name=p.name,
                    parent_id=parent_id,
                    tags={T.TAG_ROLE: "ablation-run", T.TAG_KNOB: knob.name, T.TAG_VALUE: p.value},
                    progress=progress,
                    expect_sha256=baseline.params.get("dataset.sha256"),
                )
            )
        from .compare import attach_table, sweep_table

        attach_table(tracker, parent_id, sweep_table(tracker, tracker.get_run(parent_id)))
    tracker.end_run(parent_id, "FINISHED", "complete")
    return AblationResult(parent_id, trained, skipped, stand_ins)
