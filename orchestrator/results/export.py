"""A comparison table in the formats people use: terminal, Markdown, CSV, JSON, HTML, Parquet.

Every form is made from the command's `Table`. Numbers stay numbers in CSV/JSON/Parquet
(read them back with pandas: its `.to_frame()`); the terminal, Markdown and HTML forms
round them for reading and name columns for people. Files are written atomically.
"""

from __future__ import annotations

import math
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UserError

if TYPE_CHECKING:
    import pandas as pd

    from .table import Table


class Format(StrEnum):
    TABLE = "table"
    MD = "md"
    CSV = "csv"
    JSON = "json"
    HTML = "html"
    PARQUET = "parquet"


class PrintedFormat(StrEnum):
    """The formats a sweep command prints to the terminal (Parquet is binary: `sweep table -o`)."""

    TABLE = "table"
    MD = "md"
    CSV = "csv"
    JSON = "json"
    HTML = "html"


FORMATS = tuple(f.value for f in Format)
SUFFIXES = {
    ".txt": Format.TABLE,
    ".md": Format.MD,
    ".markdown": Format.MD,
    ".csv": Format.CSV,
    ".json": Format.JSON,
    ".html": Format.HTML,
    ".htm": Format.HTML,
    ".parquet": Format.PARQUET,
    ".pq": Format.PARQUET,
}


def _fmt(v, spec: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return format(v, spec)


def interval_text(delta: float, low: float, high: float) -> str:
    """`-0.031 [-0.052, -0.010]`: the delta with its interval (just the delta without)."""
    if isinstance(delta, float) and math.isnan(delta):
        return ""
    if isinstance(low, float) and math.isnan(low):
        return format(delta, "+.4f")
    return f"{delta:+.4f} [{low:+.4f}, {high:+.4f}]"


def interval_header(table: Table) -> str:
    """`delta [95% simultaneous CI]` at alpha 0.05: the level the table's intervals hold at
    together (every row, every look)."""
    return f"delta [{table.ci_label}]"


def _display_frame(table: Table) -> pd.DataFrame:
    """The table for reading: numbers rounded, the interval in one cell, ids left out."""
    import pandas as pd

    df = table.to_frame()
    out = pd.DataFrame(
        {
            "knob": df["knob"],
            "value": df["value"],
            "seeds": df["seeds"],
            "best_val_loss": [
                _fmt(m, ".4f") + ("" if math.isnan(s) else f" ± {s:.4f}")
                for m, s in zip(df["best_val_loss"], df["best_val_loss_std"], strict=True)
            ],
            "baseline_val_loss": [_fmt(v, ".4f") for v in df["baseline_val_loss"]],
            interval_header(table): [
                interval_text(d, lo, hi)
                for d, lo, hi in zip(
                    df["delta"], df["delta_ci_low"], df["delta_ci_high"], strict=True
                )
            ],
            "delta %": [_fmt(v, "+.1f") + ("" if math.isnan(v) else "%") for v in df["delta_pct"]],
            table.verdict_header: df["verdict"],
            "p_adj": [_fmt(v, ".3f") for v in df["p_adjusted"]],
            "seeds_needed": [
                ">200" if v == math.inf else _fmt(v, ".0f") for v in df["seeds_needed"]
            ],
            "pairing": df["pairing"],
            "ppl": [_fmt(v, ".2f") for v in df["best_val_ppl"]],
            "train_loss": [_fmt(v, ".4f") for v in df["final_train_loss"]],
            "gap": [_fmt(v, "+.4f") for v in df["train_val_gap"]],
            "best_step": [_fmt(v, ",.0f") for v in df["best_step"]],
            "tok/s": [_fmt(v, ",.0f") for v in df["tokens_per_s"]],
            "wall_s": [_fmt(v, ".1f") for v in df["wall_s"]],
            "params": [_fmt(v, ",.0f") for v in df["params"]],
            "train_flops": [_fmt(v, ".2e") for v in df["train_flops"]],
            "compute_to_target": [r.to_target_label for r in table.rows],
        }
    )
    if df["note"].astype(bool).any():
        out["note"] = df["note"]
    return out


INTEGER_COLUMNS = ("seeds", "seeds_needed", "best_step", "params")  # whole numbers, or empty
CELL_WIDTH = 48  # a terminal cell wider than this (a long pruned reason) is cut with "…"


def typed_frame(table: Table) -> pd.DataFrame:
    """The rows for files: whole-number columns as integers (pandas' nullable Int64: `30`,
    not `30.0`, and empty where there is none); `value` text in every format (`0.0` and
    `trial-3: ...` alike: a CSV reader is told so by the quotes, pandas by dtype=str)."""
    df = table.to_frame()
    for col in INTEGER_COLUMNS:
        df[col] = df[col].round().astype("Int64")
    df["value"] = df["value"].astype(str)
    return df


def _clipped(shown: pd.DataFrame) -> pd.DataFrame:
    def clip(v):
        text = str(v)
        return text if len(text) <= CELL_WIDTH else text[: CELL_WIDTH - 1] + "…"

    return shown.map(clip)


def render(table: Table, fmt: str) -> str | bytes:
    if fmt == "table":
        from tabulate import tabulate

        shown = _clipped(_display_frame(table))
        return tabulate(
            shown.values.tolist(),
            headers=list(shown.columns),
            tablefmt="simple",
            disable_numparse=True,
        )
    if fmt == "md":
        return _display_frame(table).to_markdown(index=False, disable_numparse=True)
    if fmt == "csv":
        import csv

        df = typed_frame(table)
        # booleans as quoted text ("True"): unquoted, a QUOTE_NONNUMERIC reader takes them
        # for numbers and fails; pandas still reads the column back as bool
        for col in df.select_dtypes(include="bool").columns:
            df[col] = df[col].map(str)
        return df.to_csv(index=False, quoting=csv.QUOTE_NONNUMERIC)
    if fmt == "json":
        return typed_frame(table).to_json(orient="records", indent=2)
    if fmt == "html":
        html = _display_frame(table).to_html(index=False, border=0, classes="sweep-table")
        # a charset, so browsers and pandas.read_html read the ± and Δ right
        return f'<meta charset="utf-8">\n{html}\n'

    if fmt == "parquet":
        import io

        buf = io.BytesIO()
        typed_frame(table).to_parquet(buf, index=False)
        return buf.getvalue()
    raise UserError(f"unknown format '{fmt}'; choose one of: {', '.join(FORMATS)}")


def write_atomic(path: Path, data: str | bytes) -> Path:
    """Write to a temporary name in the same directory, then rename: never half a file."""
    from model.files import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return Path(path)


def format_for(path: Path, fmt: str | None) -> Format:
    """The format to write `path` in: `fmt` when given, else from the suffix; a suffix this
    tool cannot write (.xlsx, .tsv, ...) is refused rather than written as plain text."""
    if fmt:
        return Format(fmt)
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        known = ", ".join(sorted(SUFFIXES))
        raise UserError(
            f"cannot tell the format of '{path}' from its suffix; use one of {known}, or --format"
        )
    return SUFFIXES[suffix]
