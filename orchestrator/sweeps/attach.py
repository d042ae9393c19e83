"""What a sweep writes onto its parent run besides its children: the comparison table (and
the best row at a glance) and figures. `results/` builds them and never writes; this does."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from .. import tracking as T
from ..paths import tables_dir

if TYPE_CHECKING:
    from ..results.table import Table

FIGURES_DIR = "plots"  # where figures go on the parent run


def attach_table(tracker: T.Tracker, parent_id: str, table: Table) -> list[Path]:
    """table.csv and table.md (with the sentence under it) on the parent run, the same files
    next to the store, what the table was decided with (settings, baseline seeds, history:
    `Table.tags`), and the best row's value, verdict, val loss and delta."""
    from ..results.export import render, write_atomic

    name = table.sweep.replace(":", "-") or "sweep"
    out_dir = tables_dir(tracker.store_dir)
    text = {"csv": render(table, "csv"), "md": f"{render(table, 'md')}\n\n{table.legend}\n"}
    written = [
        write_atomic(out_dir / f"{name}-{parent_id[:8]}.{fmt}", text[fmt]) for fmt in ("csv", "md")
    ]
    tags = table.tags()
    best = table.lowest()
    if best is not None:
        tags |= {T.TAG_BEST_VALUE: best.value, T.TAG_BEST_VERDICT: best.label}
        metrics = {"best_val_loss": best.best_val_loss, "best_delta": best.delta}
        finite = {k: v for k, v in metrics.items() if math.isfinite(v)}
        if finite:
            tracker.log_metrics(parent_id, finite, 0)
    tracker.set_tags(parent_id, tags)
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in ("csv", "md"):
            path = write_atomic(Path(tmp) / f"table.{fmt}", text[fmt])
            tracker.log_artifact(parent_id, path)
    return written


def attach_figures(tracker: T.Tracker, parent_id: str, paths: list[Path]) -> list[str]:
    """PNGs onto the parent run under plots/; returns their artifact paths."""
    for path in paths:
        tracker.log_artifact(parent_id, path, FIGURES_DIR)
    return [f"{FIGURES_DIR}/{p.name}" for p in paths]
