"""The knobs an ablation can turn: how each parses its values and changes a config.

Default values come from experiments/knobs.toml (dropout 0.0, 0.1, 0.2 as in the notes).
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from model.errors import ConfigError

from ..config import RunConfig, coerce, heads_for
from ..errors import UserError


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


def unknown_knob_message(name: str) -> str:
    """`unknown knob 'dropot' (did you mean 'dropout'?); known knobs: ...`: only knobs are
    suggested (a config key such as `save_best` is no knob: it cannot be ablated)."""
    close = difflib.get_close_matches(name, list(KNOBS), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown knob '{name}'{hint}; known knobs: {', '.join(KNOBS)}"


def knob_or_error(name: str) -> Knob:
    if name not in KNOBS:
        raise UserError(unknown_knob_message(name))
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
