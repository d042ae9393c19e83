"""One self-contained document per sweep (or per experiment): what a person reads to decide.

Contents: the baseline's config and dataset, each sweep's comparison table with verdicts,
its figures, the best configuration as a ready-to-run command, and the best run's sample
next to the baseline's. HTML embeds its figures as data URIs (one file to mail); Markdown
references PNGs written in a folder beside it. Written atomically.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from . import tracking as T
from .compare import SWEEP_ROLES, find_sweep, render, sweep_table, write_atomic
from .errors import UserError

if TYPE_CHECKING:
    import pandas as pd

REPORT_FORMATS = {".md": "md", ".markdown": "md", ".html": "html", ".htm": "html"}
SKIP_PARAMS = {"seed", "device"}  # not part of "the configuration" a person would change


def report_format(path: Path) -> str:
    fmt = REPORT_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise UserError(f"report file must end in .md or .html (got '{path}')")
    return fmt


# -- what goes in --------------------------------------------------------------------------


@dataclass
class Best:
    """The best variant of a sweep against its baseline, with a command to train it."""

    value: str
    mean: float
    base_mean: float
    run: T.RunInfo | None
    changes: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (baseline, best)
    command: str = ""

    @property
    def beats_baseline(self) -> bool:
        return (
            math.isfinite(self.mean)
            and math.isfinite(self.base_mean)
            and self.mean < self.base_mean
        )


def config_params(params: dict[str, str]) -> dict[str, str]:
    from .config import DATA_KEY, FIELDS

    return {k: params[k] for k in [*FIELDS, DATA_KEY] if k in params}


def _norm(key: str, raw) -> str:
    from .config import coerce

    try:
        v = coerce(key, raw)
    except Exception:
        return str(raw)
    return "None" if v is None else str(v)


def config_changes(base: dict[str, str], best: dict[str, str]) -> dict[str, tuple[str, str]]:
    """Config keys whose value differs between two runs' params (seed and device ignored)."""
    a, b = config_params(base), config_params(best)
    return {
        k: (a.get(k, ""), b[k])
        for k in b
        if k not in SKIP_PARAMS and k != "data" and _norm(k, a.get(k)) != _norm(k, b[k])
    }


def ready_command(base: dict[str, str], changes: dict[str, tuple[str, str]], seeds: int = 1) -> str:
    """`sweep baseline ...` that trains the baseline's recorded config with `changes` applied."""
    from .config import baseline_command, from_flat

    cfg = from_flat({**config_params(base), **{k: new for k, (_, new) in changes.items()}})
    return baseline_command(cfg, seeds)


def find_best(
    tracker: T.Tracker, parent: T.RunInfo, df: pd.DataFrame, base_run: T.RunInfo
) -> Best | None:
    rows = df[(df["verdict"] != "baseline") & df["best_val_loss"].notna()]
    if rows.empty:
        return None
    row = rows.loc[rows["best_val_loss"].idxmin()]
    ids = set(str(row["run_ids"]).split())
    runs = [
        r
        for r in tracker.children(parent.run_id)
        if r.run_id in ids and r.state == "complete" and "best_val_loss" in r.metrics
    ]
    run = min(runs, key=lambda r: r.metrics["best_val_loss"]) if runs else None
    base_mean = df.attrs.get("baseline_mean", math.nan)
    best = Best(str(row["value"]), float(row["best_val_loss"]), float(base_mean), run)
    if run is not None:
        best.changes = config_changes(base_run.params, run.params)
        seeds = int(base_run.tags.get("sweep.seeds", "1") or 1)
        best.command = ready_command(base_run.params, best.changes, seeds)
    return best


def last_sample(tracker: T.Tracker, run: T.RunInfo, workdir: Path) -> tuple[str, str] | None:
    """(artifact path, text) of the sample at the highest step, or None."""
    try:
        names = tracker.list_artifacts(run.run_id, "samples")
    except Exception:
        return None
    steps = []
    for n in names:
        m = re.search(r"step-(\d+)\.txt$", n)
        if m:
            steps.append((int(m.group(1)), n))
    if not steps:
        return None
    _, name = max(steps)
    os.environ.setdefault(
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false"
    )  # no progress bars in a report
    path = tracker.download(run.run_id, name, workdir / run.run_id)
    return name, path.read_text(encoding="utf-8", errors="replace")


def best_member(tracker: T.Tracker, base_run: T.RunInfo) -> T.RunInfo:
    members = [r for r in tracker.baseline_members(base_run) if "best_val_loss" in r.metrics]
    return min(members, key=lambda r: r.metrics["best_val_loss"]) if members else base_run


# -- writing -----------------------------------------------------------------------------


def _md_cell(v) -> str:
    return str(v).replace("|", "\\|")


class _Doc:
    """Tiny writer with the same calls for Markdown and HTML."""

    def __init__(self, fmt: str):
        self.fmt = fmt
        self.parts: list[str] = []

    def h(self, level: int, text: str) -> None:
        self.parts.append(
            f"{'#' * level} {text}\n"
            if self.fmt == "md"
            else f"<h{level}>{html.escape(text)}</h{level}>"
        )

    def p(self, text: str, code: bool = False) -> None:
        if self.fmt == "md":
            self.parts.append(f"`{text}`\n" if code else f"{text}\n")
        else:
            self.parts.append(
                f"<p><code>{html.escape(text)}</code></p>"
                if code
                else f"<p>{html.escape(text)}</p>"
            )

    def raw(self, md: str, htm: str) -> None:
        self.parts.append(md if self.fmt == "md" else htm)

    def kv(self, rows: list[tuple[str, str]], head: tuple[str, str] = ("key", "value")) -> None:
        if self.fmt == "md":
            lines = [f"| {head[0]} | {head[1]} |", "|---|---|"]
            lines += [f"| `{k}` | `{_md_cell(v)}` |" for k, v in rows]
            self.parts.append("\n".join(lines) + "\n")
        else:
            body = "".join(
                f"<tr><td><code>{html.escape(k)}</code></td><td><code>{html.escape(str(v))}</code></td></tr>"
                for k, v in rows
            )
            self.parts.append(
                f'<table class="kv"><tr><th>{head[0]}</th><th>{head[1]}</th></tr>{body}</table>'
            )

    def code(self, text: str) -> None:
        if self.fmt == "md":
            self.parts.append(f"```\n{text.rstrip()}\n```\n")
        else:
            self.parts.append(f"<pre>{html.escape(text)}</pre>")

    def text(self) -> str:
        return "\n".join(self.parts)


CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
th { background: #f3f3f3; }
pre { background: #f7f7f7; padding: 0.6em; white-space: pre-wrap; font-size: 0.85em; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.5em 0; }
.samples { display: flex; gap: 1em; } .samples > div { flex: 1; min-width: 0; }
code { background: #f3f3f3; }
"""


@dataclass
class ReportResult:
    path: Path
    sweeps: list[str]
    figures: list[Path]
    notes: list[str]


def _figure(doc: _Doc, png: Path, title: str, report_dir: Path) -> None:
    if doc.fmt == "md":
        rel = png.relative_to(report_dir) if png.is_relative_to(report_dir) else png
        doc.raw(f"![{title}]({rel.as_posix()})\n", "")
    else:
        b64 = base64.b64encode(png.read_bytes()).decode("ascii")
        doc.raw(
            "",
            f'<figure><img alt="{html.escape(title)}" src="data:image/png;base64,{b64}"><figcaption>{html.escape(title)}</figcaption></figure>',
        )


def sweeps_for(tracker: T.Tracker, sweep_id: str | None) -> list[T.RunInfo]:
    if sweep_id:
        return [find_sweep(tracker, sweep_id)]
    runs = [
        r
        for r in tracker.search(f"tags.`{T.TAG_ROLE}` != ''", ["attributes.start_time ASC"])
        if r.tags.get(T.TAG_ROLE) in SWEEP_ROLES
    ]
    if not runs:
        raise UserError(
            f"no sweep in experiment '{tracker.experiment_name}' yet: run `sweep ablate --knob dropout`"
        )
    return runs


def default_path(tracker: T.Tracker, sweeps: list[T.RunInfo], single: bool) -> Path:
    from .plots import sweep_slug

    slug = (
        sweep_slug(sweeps[0])
        if single
        else "".join(c if c.isalnum() or c in "-_." else "-" for c in tracker.experiment_name)
    )
    return tracker.store_dir / "sweep-reports" / f"{slug}.html"


def write_report(tracker: T.Tracker, sweeps: list[T.RunInfo], out: Path) -> ReportResult:
    from . import plots

    out = Path(out)
    fmt = report_format(out)
    doc = _Doc(fmt)
    notes: list[str] = []
    figures: list[Path] = []
    title = f"Sweep report: experiment '{tracker.experiment_name}'"
    doc.h(1, title)
    now = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    doc.p(
        f"Store {tracker.uri}; {len(sweeps)} sweep(s); written {now}. Lower val loss is better; "
        "verdicts compare the seeds' best val loss with Welch's t-test at 5%."
    )
    with tempfile.TemporaryDirectory(prefix="sweep-report-") as tmp:
        tmpdir = Path(tmp)
        fig_root = out.parent / f"{out.stem}-figures" if fmt == "md" else tmpdir / "figures"
        shown_baselines: set[str] = set()
        for parent in sweeps:
            df = sweep_table(tracker, parent)
            base_id = parent.tags.get(T.TAG_BASELINE, "")
            base_run = tracker.get_run(base_id) if base_id else None
            if base_run is not None and base_id not in shown_baselines:
                shown_baselines.add(base_id)
                _baseline_section(doc, base_run)
            doc.h(2, f"Sweep {parent.name} ({parent.run_id})")
            knob = parent.tags.get(T.TAG_KNOB)
            doc.p(
                f"Role {parent.tags.get(T.TAG_ROLE)}"
                + (f", knob {knob}" if knob else "")
                + f", status {parent.status}, against baseline {base_id or 'none'}."
            )
            doc.h(3, "Comparison")
            doc.raw(str(render(df, "md")) + "\n", str(render(df, "html")))
            counts = df[df["verdict"] != "baseline"]["verdict"].value_counts()
            if len(counts):
                doc.p("Verdicts: " + ", ".join(f"{n} {w}" for w, n in counts.items()) + ".")
            res = plots.plot_sweep(
                tracker, parent, fig_root / plots.sweep_slug(parent), attach=False
            )
            notes += [f"{parent.name}: {n}" for n in res.notes]
            if res.paths:
                doc.h(3, "Figures")
            for png in res.paths:
                _figure(doc, png, f"{parent.name}: {png.stem}", out.parent)
                figures.append(png)
            for n in res.notes:
                doc.p(f"Note: {n}")
            if base_run is not None:
                _best_section(doc, tracker, parent, df, base_run, tmpdir)
        body = doc.text()
        if fmt == "html":
            data = (
                f'<!doctype html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
                f"<style>{CSS}</style></head><body>\n{body}\n</body></html>\n"
            )
        else:
            data = body
        write_atomic(out, data)
    return ReportResult(out, [p.run_id for p in sweeps], figures if fmt == "md" else [], notes)


def _baseline_section(doc: _Doc, base_run: T.RunInfo) -> None:
    doc.h(2, f"Baseline {base_run.run_id}")
    m = base_run.metrics
    seeds = base_run.tags.get("sweep.seed_list", base_run.params.get("seed", ""))
    loss = m.get("best_val_loss")
    std = m.get("best_val_loss_std")
    line = f"Seeds {seeds}"
    if loss is not None:
        line += f"; best val loss {loss:.4f}" + (f" ± {std:.4f}" if std else "")
    doc.p(line + ".")
    doc.h(3, "Configuration")
    doc.kv(sorted(config_params(base_run.params).items()))
    doc.h(3, "Dataset")
    doc.kv(sorted((k, v) for k, v in base_run.params.items() if k.startswith("dataset.")))


def _best_section(
    doc: _Doc, tracker: T.Tracker, parent: T.RunInfo, df, base_run: T.RunInfo, tmpdir: Path
) -> None:
    best = find_best(tracker, parent, df, base_run)
    doc.h(3, "Best configuration")
    if best is None or best.run is None:
        doc.p("No variant finished: nothing to recommend yet.")
        return
    delta = best.mean - best.base_mean
    changed = ", ".join(f"{k} {a} -> {b}" for k, (a, b) in best.changes.items()) or "none"
    if best.beats_baseline:
        doc.p(
            f"Best variant: {best.value} (best val loss {best.mean:.4f}, {delta:+.4f} against the baseline). "
            f"Changes against the baseline: {changed}. Train it as a new baseline with:"
        )
    else:
        doc.p(
            f"No variant beats the baseline (best variant {best.value}: {best.mean:.4f}, {delta:+.4f}); "
            f"keep the baseline. The best variant's changes: {changed}; to train it anyway:"
        )
    doc.code(best.command)
    doc.h(3, "Samples")
    base_member = best_member(tracker, base_run)
    left = last_sample(tracker, base_member, tmpdir)
    right = last_sample(tracker, best.run, tmpdir)
    cells = [
        (
            f"baseline ({base_member.name}, {left[0] if left else 'no sample'})",
            left[1] if left else "",
        ),
        (
            f"best variant ({best.run.name}, {right[0] if right else 'no sample'})",
            right[1] if right else "",
        ),
    ]
    if doc.fmt == "md":
        for head, text in cells:
            doc.raw(f"**{head}**\n\n```\n{text.rstrip()}\n```\n", "")
    else:
        inner = "".join(
            f"<div><h4>{html.escape(h)}</h4><pre>{html.escape(t)}</pre></div>" for h, t in cells
        )
        doc.raw("", f'<div class="samples">{inner}</div>')
