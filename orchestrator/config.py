"""Profiles (experiments/*.toml) + `--set key=value` overrides -> a validated RunConfig.

Keys are flat, as the user types them (`n_layer`, `dropout`, `max_steps`, ...); the
profile TOML may group them in `[model]`, `[train]`, `[sample]` tables. Every value is
validated by the dataclass that owns it, and errors name the key the way it was given.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import re
import shlex
import tomllib
import typing
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from model.config import MAX_SEED, GPTConfig, SampleConfig, TrainConfig
from model.errors import ConfigError

from .errors import UserError

SLURM_TABLE = "slurm"  # a profile's Slurm options (not part of any run's config)
SECTIONS: dict[str, type] = {"model": GPTConfig, "train": TrainConfig, "sample": SampleConfig}
HIDDEN = {"vocab_size"}  # set from the corpus, never by the user
DATA_KEY = "data"  # corpus spec: "shakespeare", "pydoc" or a path
# The course notes' names for the same things.
ALIASES = {"val_every": "eval_every", "n_embd": "n_embed"}


def _fields() -> dict[str, tuple[str, type, Any]]:
    out: dict[str, tuple[str, type, Any]] = {}
    for section, cls in SECTIONS.items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name not in HIDDEN:
                out[f.name] = (section, hints[f.name], f.default)
    return out


FIELDS = _fields()
KNOWN_KEYS = sorted([*FIELDS, DATA_KEY])
# Where and how a run executes, not what is trained: left out of the config hash, of the
# differences a command or report shows, and of what a search may vary.
RUN_ONLY = frozenset({"device", "save_best", "threads"})
# Not what a person changes to make the model better: where and how a run executes, its seed
# (a comparison repeats over seeds) and its corpus (a comparison holds it fixed). A search
# never varies them; a best variant's differences from its baseline leave them out.
FIXED_KEYS = RUN_ONLY | {"seed", DATA_KEY}


def is_config_key(key: str) -> bool:
    return key in FIELDS or key == DATA_KEY


def config_params(params: dict[str, str]) -> dict[str, str]:
    """The configuration keys among a run's recorded params (dataset.* and others dropped)."""
    return {k: v for k, v in params.items() if is_config_key(k)}


def recorded_config(run) -> RunConfig:
    """The config recorded with a run (a `tracking.RunInfo`): what sweeps start from, never
    a profile read again."""
    try:
        return from_flat(config_params(run.params))
    except Exception as e:  # a store written by another version of the tool
        raise UserError(f"run {run.run_id} has a config this version cannot read: {e}") from None


def parse_bool(raw: Any) -> bool | None:
    """true/false, yes/no, on/off, 1/0 (any case) -> bool; anything else -> None."""
    if isinstance(raw, bool):
        return raw
    return {
        "1": True,
        "true": True,
        "yes": True,
        "on": True,
        "0": False,
        "false": False,
        "no": False,
        "off": False,
    }.get(str(raw).strip().lower())


@dataclass(frozen=True)
class RunConfig:
    gpt: GPTConfig
    train: TrainConfig
    sample: SampleConfig
    data: str | None = None  # None: the default corpus (the packaged tiny-shakespeare)

    def to_flat(self) -> dict[str, Any]:
        flat: dict[str, Any] = {}
        for section in (self.gpt, self.train, self.sample):
            for f in dataclasses.fields(section):
                if f.name not in HIDDEN:
                    flat[f.name] = getattr(section, f.name)
        flat[DATA_KEY] = self.data
        return flat

    def replace(self, **changes: Any) -> RunConfig:
        flat = self.to_flat()
        flat.update(changes)
        return from_flat(flat)

    def config_hash(self) -> str:
        """Identity of what is trained (device and checkpoint name do not change the result)."""
        flat = {k: v for k, v in self.to_flat().items() if k not in RUN_ONLY}
        blob = json.dumps(flat, sort_keys=True, default=str)
        return hashlib.sha1(blob.encode()).hexdigest()[:16]


def heads_for(n_embed: int, n_head: int) -> int:
    """The notes' rule: keep n_head when it divides the width, else the largest divisor below it."""
    for h in range(min(n_head, n_embed), 0, -1):
        if n_embed % h == 0:
            return h
    return 1


def unknown_key_message(key: str) -> str:
    close = difflib.get_close_matches(key, KNOWN_KEYS, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown key '{key}'{hint}; known keys: {', '.join(KNOWN_KEYS)}"


def coerce(key: str, raw: Any) -> Any:
    """Turn a TOML value or a command-line string into the field's type."""
    if key == DATA_KEY:
        return None if raw in (None, "", "None", "default") else str(raw)
    if key not in FIELDS:
        raise ConfigError(key, unknown_key_message(key))
    typ = FIELDS[key][1]
    text = raw.strip() if isinstance(raw, str) else raw
    try:
        if typ is bool:
            value = parse_bool(text)
            if value is None:
                raise ValueError
            return value
        if typ is int:
            if isinstance(text, bool):
                raise ValueError
            if isinstance(text, int):
                value = text
            else:
                digits = str(text).replace("_", "")
                try:
                    value = int(digits)  # exact: 99999999999999999999 stays what was typed
                except ValueError:
                    number = float(digits)  # "1e3"
                    if not number.is_integer():
                        raise ValueError from None
                    value = int(number)
            if key == "seed" and not 0 <= value <= MAX_SEED:
                raise ConfigError(key, f"seed must be an integer in [0, {MAX_SEED}] (got {raw!r})")
            return value
        if typ is float:
            if isinstance(text, bool):
                raise ValueError
            return float(str(text).replace("_", "")) if isinstance(text, str) else float(text)
        return str(text)
    except ConfigError:
        raise
    except (TypeError, ValueError):
        kind = {bool: "true or false", int: "an integer", float: "a number"}.get(typ, "a string")
        raise ConfigError(key, f"{key} must be {kind} (got {raw!r})") from None


def from_flat(flat: dict[str, Any]) -> RunConfig:
    """Build and validate a RunConfig from flat keys (missing keys take the dataclass defaults)."""
    values: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    data = None
    for key, raw in flat.items():
        if key == DATA_KEY:
            data = coerce(key, raw)
            continue
        if key not in FIELDS:
            raise ConfigError(key, unknown_key_message(key))
        values[FIELDS[key][0]][key] = coerce(key, raw)
    return RunConfig(
        gpt=GPTConfig(**values["model"]),
        train=TrainConfig(**values["train"]),
        sample=SampleConfig(**values["sample"]),
        data=data,
    )


def normalize_key(key: str) -> str:
    return ALIASES.get(key.strip(), key.strip())


def parse_overrides(pairs: list[str]) -> dict[str, str]:
    """`["n_layer=6", "dropout=0.2"]` -> {"n_layer": "6", "dropout": "0.2"}; refuses unknown keys."""
    out: dict[str, str] = {}
    for pair in pairs:
        if "=" not in pair:
            raise UserError(f"--set {pair}: expected key=value")
        key, raw = pair.split("=", 1)
        key = normalize_key(key)
        if key == "use_cosine":  # the notes' flag
            flag = parse_bool(raw)
            if flag is None:
                raise UserError(f"--set {pair}: expected true or false")
            key, raw = "schedule", "cosine" if flag else "constant"
        if not is_config_key(key):
            raise UserError(f"--set {pair}: {unknown_key_message(key)}")
        if key == "save_best":
            raise UserError(
                f"--set {pair}: the best checkpoint is always stored as checkpoints/best.pt of "
                "its run; save_best cannot be set"
            )
        out[key] = raw
    return out


def profile_names() -> list[str]:
    root = resources.files("experiments")
    return sorted(
        p.name[:-5] for p in root.iterdir() if p.name.endswith(".toml") and p.name != "knobs.toml"
    )


def read_toml(name_or_path: str, kind: str, names: list[str], package: str) -> tuple[str, dict]:
    """Read a named TOML shipped in `package`, or a user's own file by path."""
    path = Path(name_or_path).expanduser()
    if name_or_path.endswith(".toml") or path.exists():
        try:
            return str(path), tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(f"{kind} file not found: {path}") from None
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
            raise UserError(f"{kind} file {path} is not valid TOML: {e}") from None
    resource = resources.files(package).joinpath(f"{name_or_path}.toml")
    if name_or_path not in names or not resource.is_file():
        raise UserError(
            f"unknown {kind} '{name_or_path}'; known: {', '.join(names)} (or a path to a .toml file)"
        )
    return name_or_path, tomllib.loads(resource.read_text(encoding="utf-8"))


def load_profile(name_or_path: str) -> tuple[str, dict[str, Any]]:
    """Flat key -> value from a profile; tables [model]/[train]/[sample] are merged."""
    label, doc = read_toml(name_or_path, "profile", profile_names(), "experiments")
    flat: dict[str, Any] = {}
    for key, value in doc.items():
        if key == SLURM_TABLE:
            continue  # where runs train, not what: slurm_table()
        items = value.items() if isinstance(value, dict) else [(key, value)]
        for k, v in items:
            k = normalize_key(k)
            if k == "use_cosine":
                flag = parse_bool(v)
                if flag is None:
                    raise UserError(
                        f"profile {label}: use_cosine must be true or false (got {v!r})"
                    )
                k, v = "schedule", "cosine" if flag else "constant"
            if not is_config_key(k):
                raise UserError(f"profile {label}: {unknown_key_message(k)}")
            flat[k] = v
    return label, flat


def slurm_table(name_or_path: str) -> tuple[str, dict[str, Any]]:
    """(label, the profile's [slurm] table): what each Slurm job asks for (execution/
    slurm_options.py reads it); an empty table when the profile has none."""
    label, doc = read_toml(name_or_path, "profile", profile_names(), "experiments")
    table = doc.get(SLURM_TABLE, {})
    if not isinstance(table, dict):
        raise UserError(f"profile {label}: [{SLURM_TABLE}] must be a table")
    return label, table


def build(profile: str, overrides: dict[str, str], data: str | None = None) -> RunConfig:
    """Profile + overrides -> RunConfig; every error names where the bad value came from."""
    label, flat = load_profile(profile)
    flat.update(overrides)
    if data is not None:
        flat[DATA_KEY] = data
    return validated(flat, overrides, f"profile {label}")


def validated(flat: dict[str, Any], overrides: dict[str, str], origin: str) -> RunConfig:
    try:
        return from_flat(flat)
    except ConfigError as e:
        # Name every override the message is about (a cross-field rule names two keys).
        related = [
            k for k in overrides if k == e.key or re.search(rf"\b{re.escape(k)}\b", e.message)
        ]
        if related:
            where = " ".join(f"--set {k}={overrides[k]}" for k in related)
            raise UserError(f"{where}: {e.message}") from None
        raise UserError(f"{origin}: {e.message}") from None


def notes(cfg: RunConfig) -> list[str]:
    """Settings that train, but probably not as meant: said as warnings before training."""
    out = []
    t = cfg.train
    if t.warmup_steps > t.max_steps:
        out.append(
            f"warmup_steps ({t.warmup_steps}) is more than max_steps ({t.max_steps}): the "
            "learning rate never reaches its peak"
        )
    return out


def heads_note(n_embed: int, wanted: int, got: int) -> str | None:
    if got == wanted:
        return None
    return (
        f"n_embed={n_embed} is not divisible by n_head={wanted}: n_head is {got} (the largest "
        "divisor at or below it), which changes the attention too"
    )


def baseline_command(cfg: RunConfig, seeds: int = 1) -> str:
    """A ready-to-run `sweep baseline` line that trains exactly `cfg`: the shipped profile it
    differs least from, one --set per difference, --data unless it is the default corpus."""
    flat = cfg.to_flat()
    best: tuple[str, list[str]] | None = None
    for name in profile_names():
        try:
            prof = build(name, {}).to_flat()
        except UserError:
            continue
        # the seed is kept (the line trains exactly `cfg`); the corpus has its own --data
        diffs = [k for k in flat if k not in FIXED_KEYS - {"seed"} and flat[k] != prof[k]]
        if best is None or len(diffs) < len(best[1]):
            best = (name, diffs)
    if best is None:
        raise UserError("no profile in experiments/ could be read")
    name, diffs = best
    parts = ["sweep", "baseline", "--profile", name]
    if cfg.data not in (None, "shakespeare"):
        parts += ["--data", str(cfg.data)]
    parts += [arg for k in diffs for arg in ("--set", f"{k}={flat[k]}")]
    if seeds > 1:
        parts += ["--seeds", str(seeds)]
    return shlex.join(parts)
