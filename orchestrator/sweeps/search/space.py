"""The searched space: which keys of the baseline's config a study changes, and how.

A space is a TOML document in `experiments/spaces/` (or a path): one table per key, a range
(`low`, `high`, optional `log = true` / `step`) or a list (`choices` or `values`), with an
optional `type` ("float", "int" or "categorical") that must agree with the key. `log` is a
TOML boolean; an int key's `step` is a whole number. A trial's config is the baseline's
recorded config with only those keys changed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from enum import StrEnum
from importlib import resources
from typing import Any

from model.errors import ConfigError

from ...config import (
    FIELDS,
    FIXED_KEYS,
    RunConfig,
    coerce,
    heads_for,
    heads_note,
    notes,
    read_toml,
    unknown_key_message,
)
from ...errors import UserError

SPEC_FIELDS = {"low", "high", "log", "step", "choices", "values", "type"}


class Kind(StrEnum):
    FLOAT = "float"
    INT = "int"
    CATEGORICAL = "categorical"


@dataclass(frozen=True)
class Param:
    """One searched key: a float/int range or a list of choices."""

    name: str
    kind: Kind
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple = ()

    def suggest(self, trial) -> Any:
        if self.kind is Kind.CATEGORICAL:
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind is Kind.INT:
            return trial.suggest_int(
                self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log
            )
        return trial.suggest_float(
            self.name, float(self.low), float(self.high), step=self.step, log=self.log
        )

    def describe(self) -> str:
        if self.kind is Kind.CATEGORICAL:
            return f"{self.name} in {list(self.choices)}"
        return f"{self.name} {self.kind} [{self.low}, {self.high}]" + (" log" if self.log else "")


@dataclass(frozen=True)
class Space:
    label: str
    params: tuple[Param, ...]

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def fingerprint(self) -> str:
        return json.dumps([p.describe() for p in self.params])

    def grid(self) -> dict[str, list]:
        ranges = [p.name for p in self.params if p.kind is not Kind.CATEGORICAL]
        if ranges:
            raise UserError(
                f"--sampler grid needs a list for every key, but space {self.label} gives a "
                f"range for {', '.join(ranges)}; write `values = [...]` for them"
            )
        return {p.name: list(p.choices) for p in self.params}


def space_names() -> list[str]:
    root = resources.files("experiments").joinpath("spaces")
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".toml"))


def load_space(name_or_path: str) -> Space:
    label, doc = read_toml(name_or_path, "space", space_names(), "experiments.spaces")
    return parse_space(label, doc)


def parse_space(label: str, doc: dict[str, Any]) -> Space:
    """Validate a space document; every error is one line that names the key."""
    if not doc:
        raise UserError(
            f"space {label} is empty: give at least one key, e.g. [dropout] low = 0.0 high = 0.3"
        )
    return Space(label, tuple(_param(label, key, spec) for key, spec in doc.items()))


def _param(label: str, key: str, spec: Any) -> Param:
    where = f"space {label}: {key}"
    if key not in FIELDS:
        raise UserError(f"space {label}: {unknown_key_message(key)}")
    if key in FIXED_KEYS:
        raise UserError(f"{where}: this key cannot be searched")
    if not isinstance(spec, dict):
        raise UserError(
            f"{where}: expected a table, e.g. [{key}] low = ... high = ... or choices = [...]"
        )
    unknown = set(spec) - SPEC_FIELDS
    if unknown:
        raise UserError(
            f"{where}: unknown field(s) {', '.join(sorted(unknown))}; "
            "use low/high/log/step or choices"
        )
    typ = FIELDS[key][1]
    listed = spec.get("choices", spec.get("values"))
    _check_type(where, key, spec.get("type"), typ, listed is not None)
    if listed is not None:
        ranged = sorted(set(spec) & {"low", "high", "log", "step"})
        if ranged:
            raise UserError(f"{where}: {', '.join(ranged)} apply to a range, not to a list")
        if not isinstance(listed, list) or not listed:
            raise UserError(f"{where}: empty choices; give at least one value")
        try:
            values = tuple(dict.fromkeys(coerce(key, v) for v in listed))
        except ConfigError as e:
            raise UserError(f"{where}: {e.message}") from None
        return Param(key, Kind.CATEGORICAL, choices=values)
    if "low" not in spec or "high" not in spec:
        raise UserError(f"{where}: give low and high, or choices = [...]")
    if typ not in (int, float):
        raise UserError(f"{where}: {key} is not a number; give choices = [...]")
    try:
        low, high = coerce(key, spec["low"]), coerce(key, spec["high"])
    except ConfigError as e:
        raise UserError(f"{where}: {e.message}") from None
    if not low < high:
        raise UserError(f"{where}: empty range: low ({low}) must be below high ({high})")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise UserError(f"{where}: log must be true or false (a TOML boolean), got {log!r}")
    if log and low <= 0:
        raise UserError(f"{where}: a log range needs low > 0 (got {low})")
    step = _step(where, spec.get("step"), typ, log)
    return Param(key, Kind.INT if typ is int else Kind.FLOAT, low, high, log, step)


def _check_type(where: str, key: str, given: Any, typ: type, listed: bool) -> None:
    """`type`, when given, names how the key is searched: it must agree with the key."""
    if given is None:
        return
    known = ", ".join(f'"{k}"' for k in Kind)
    if not isinstance(given, str) or given not in set(Kind):
        raise UserError(f"{where}: unknown type {given!r}; the types are {known}")
    if listed:
        expected = Kind.CATEGORICAL
    elif typ in (int, float):
        expected = Kind.INT if typ is int else Kind.FLOAT
    else:
        expected = None  # a range of a key that is no number: refused just after
    if expected is not None and given != expected:
        how = "a list of choices" if listed else f"a range of {expected} values"
        raise UserError(f'{where}: type = "{given}", but this table gives {how}')


def _step(where: str, step: Any, typ: type, log: bool) -> float | int | None:
    if step is None:
        return None
    if isinstance(step, bool) or not isinstance(step, (int, float)) or not step > 0 or log:
        raise UserError(f"{where}: step must be a number > 0 and cannot be combined with log")
    if typ is int:
        if not float(step).is_integer():
            raise UserError(f"{where}: step must be a whole number for an integer key (got {step})")
        return int(step)
    return step


def anchored(space: Space, base: RunConfig) -> Space:
    """The space widened so the baseline's own values are in it (the baseline is trial 0)."""
    flat = base.to_flat()
    out = []
    for p in space.params:
        v = flat[p.name]
        if p.kind is Kind.CATEGORICAL:
            out.append(p if v in p.choices else replace(p, choices=(*p.choices, v)))
        elif p.step is None:
            low, high = min(p.low, v), max(p.high, v)
            if p.log and low <= 0:
                low = p.low  # a log range cannot hold a 0 baseline: trial 0 uses it anyway
            out.append(replace(p, low=low, high=high))
        else:
            out.append(p)
    return Space(space.label, tuple(out))


def trial_config(base: RunConfig, params: dict[str, Any]) -> RunConfig:
    """The baseline with only the searched keys changed (n_head follows n_embed)."""
    changes = dict(params)
    if "n_embed" in changes and "n_head" not in changes:
        changes["n_head"] = heads_for(int(changes["n_embed"]), base.gpt.n_head)
    return base.replace(**changes)


def check_choices(space: Space, base: RunConfig) -> None:
    """Each listed value must make a valid config on its own, before anything trains."""
    for p in space.params:
        values = p.choices if p.kind is Kind.CATEGORICAL else (p.low, p.high)
        for v in values:
            try:
                trial_config(base, {p.name: v})
            except ConfigError as e:
                raise UserError(f"space {space.label}: {p.name}={v}: {e.message}") from None


def space_notes(space: Space, base: RunConfig) -> list[str]:
    """What some value of the space trains, but not as asked (n_head following n_embed,
    warmup longer than the run): said as warnings before the search starts."""
    out: list[str] = []
    for p in space.params:
        if p.kind is Kind.CATEGORICAL:
            values = list(p.choices)
        elif p.kind is Kind.INT and p.name == "n_embed":
            values = list(range(int(p.low), int(p.high) + 1, int(p.step or 1)))[:4096]
        else:
            values = [p.low, p.high]
        odd_widths = []
        for v in values:
            cfg = trial_config(base, {p.name: v})
            if p.name == "n_embed" and heads_note(int(v), base.gpt.n_head, cfg.gpt.n_head):
                odd_widths.append(f"{v} (n_head {cfg.gpt.n_head})")
            out += [n for n in (f"space {space.label}: {n}" for n in notes(cfg)) if n not in out]
        if odd_widths:
            shown = ", ".join(odd_widths[:6]) + (", ..." if len(odd_widths) > 6 else "")
            out.append(
                f"space {space.label}: n_embed values not divisible by n_head={base.gpt.n_head} "
                f"train with fewer heads, which changes the attention too: {shown}"
            )
    return out


def params_label(params: dict[str, Any]) -> str:
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.3g}" if v and (abs(v) < 1e-2 or abs(v) >= 1e4) else f"{v:.4g}"
        return str(v)

    return " ".join(f"{k}={fmt(v)}" for k, v in sorted(params.items()))
