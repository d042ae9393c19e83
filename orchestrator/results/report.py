"""One self-contained document per sweep (or per experiment): what a person reads to decide.

Contents: a summary (one line per sweep: its best row's verdict), the baseline's config,
dataset and sample (once per baseline), each sweep's comparison table with verdicts (in a
box that scrolls sideways when wider than the page), its figures, the best configuration as
a ready-to-run command, and the best variant's sample. Rendered with Jinja2 templates (templates/report.{md,html}.j2):
HTML embeds its figures as data URIs (one file to mail); Markdown references PNGs written
in a folder beside it. Written atomically.
"""

from __future__ import annotations

import base64
import datetime as _dt
import math
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import tracking as T
from ..errors import UserError
from ..paths import reports_dir, slug
from .best import best_member, find_best
from .export import render, write_atomic
from .table import Table, sweep_table

REPORT_FORMATS = {".md": "md", ".markdown": "md", ".html": "html", ".htm": "html"}


def report_format(path: Path) -> str:
    fmt = REPORT_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise UserError(f"report file must end in .md or .html (got '{path}')")
    return fmt


@dataclass
class ReportResult:
    path: Path
    sweeps: list[str]
    figures: list[Path]
    notes: list[str]


def sweeps_for(tracker: T.Tracker, sweep_id: str | None) -> list[T.RunInfo]:
    if sweep_id:
        return [T.find_sweep(tracker, sweep_id)]
    runs = T.list_sweeps(tracker, oldest_first=True)
    if not runs:
        raise UserError(
            f"no sweep in experiment '{tracker.experiment_name}' yet: "
            "run `sweep ablate --knob dropout`"
        )
    # a confirmation right after the search it confirms: its rows next to the search's own
    confirms = {r.run_id: r for r in runs if r.tags.get(T.TAG_SEARCH_RUN)}
    ordered: list[T.RunInfo] = []
    for run in runs:
        if run.run_id in confirms:
            continue
        ordered.append(run)
        ordered += [c for c in confirms.values() if c.tags[T.TAG_SEARCH_RUN] == run.run_id]
    ordered += [c for c in confirms.values() if c not in ordered]
    return ordered


def default_path(tracker: T.Tracker, sweeps: list[T.RunInfo], single: bool) -> Path:
    from .plots import sweep_slug

    name = sweep_slug(sweeps[0]) if single else slug(tracker.experiment_name)
    return reports_dir(tracker.store_dir) / f"{name}.html"


def last_sample(tracker: T.Tracker, run: T.RunInfo, workdir: Path) -> tuple[str, str] | None:
    """(artifact path, text) of the sample at the highest step, or None."""
    try:
        names = tracker.list_artifacts(run.run_id, "samples")
    except Exception:
        return None
    steps = [(int(m.group(1)), n) for n in names if (m := re.search(r"step-(\d+)\.txt$", n))]
    if not steps:
        return None
    _, name = max(steps)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    path = tracker.download(run.run_id, name, workdir / run.run_id)
    return name, path.read_text(encoding="utf-8", errors="replace")


def _environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("orchestrator.results", "templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",)),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["md_cell"] = lambda v: str(v).replace("|", "\\|")
    return env


def _baseline(base_run: T.RunInfo) -> dict[str, Any]:
    from ..config import config_params

    m = base_run.metrics
    summary = f"Seeds {T.seeds_label(base_run)}"
    if "best_val_loss" in m:
        std = m.get("best_val_loss_std")
        summary += f"; best val loss {m['best_val_loss']:.4f}" + (f" ± {std:.4f}" if std else "")
    return {
        "run_id": base_run.run_id,
        "summary": summary + ".",
        "config": sorted(config_params(base_run.params).items()),
        "dataset": sorted((k, v) for k, v in base_run.params.items() if k.startswith("dataset.")),
    }


def _best(tracker, parent, table: Table, base_run, tmpdir: Path) -> dict[str, Any]:
    """The sweep's best row: its summary line, the advice, a command, and the best
    variant's sample (the baseline's is shown once, with the baseline)."""
    best = find_best(tracker, parent, table, base_run)
    if best is None or best.run is None:
        return {
            "summary": "nothing finished yet",
            "text": "No variant finished: nothing to recommend yet.",
            "command": "",
            "samples": [],
        }
    samples = []
    if not best.is_baseline_config:
        right = last_sample(tracker, best.run, tmpdir)
        samples.append(
            (
                f"best variant ({best.run.name}, {right[0] if right else 'no sample'})",
                right[1] if right else "",
            )
        )
    return {
        "summary": best.summary(),
        "text": best.advice(parent),
        "command": best.command,
        "samples": samples,
    }


def _baseline_sample(tracker: T.Tracker, base_run: T.RunInfo, tmpdir: Path) -> tuple[str, str]:
    member = best_member(tracker, base_run)
    got = last_sample(tracker, member, tmpdir)
    return (f"{member.name}, {got[0] if got else 'no sample'}", got[1] if got else "")


def _figure(png: Path, title: str, fmt: str, report_dir: Path) -> dict[str, str]:
    if fmt == "md":
        rel = png.relative_to(report_dir) if png.is_relative_to(report_dir) else png
        return {"title": title, "src": rel.as_posix()}
    b64 = base64.b64encode(png.read_bytes()).decode("ascii")
    return {"title": title, "src": f"data:image/png;base64,{b64}"}


@dataclass
class _Where:
    """Where one report's pieces go: its file and format, its figures, a scratch folder."""

    out: Path
    fmt: str
    figures: Path
    tmp: Path


def _section(
    tracker: T.Tracker, parent: T.RunInfo, table: Table, where: _Where, shown: set[str]
) -> tuple[dict[str, Any], list[Path]]:
    """One sweep's part of the report, from its one Table: rows, figures and advice agree."""
    from . import plots

    base_id = parent.tags.get(T.TAG_BASELINE, "")
    base_run = tracker.get_run(base_id) if base_id else None
    knob = parent.tags.get(T.TAG_KNOB)
    counts = sorted(table.counts().items(), key=lambda kv: -kv[1])
    res = plots.plot_sweep(tracker, parent, where.figures / plots.sweep_slug(parent), table)
    section: dict[str, Any] = {
        "name": parent.name,
        "run_id": parent.run_id,
        "about": f"Role {parent.tags.get(T.TAG_ROLE)}"
        + (f", knob {knob}" if knob else "")
        + f", state {parent.state}, against baseline {base_id or 'none'}.",
        "table_md": str(render(table, "md")),
        "table_html": str(render(table, "html")),
        "legend": table.legend,
        "baseline": None,
        "best": None,
        "counts": ", ".join(f"{n} {w}" for w, n in counts),
        "notes": res.notes,
        "figures": [
            _figure(png, f"{parent.name}: {png.stem}", where.fmt, where.out.parent)
            for png in res.paths
        ],
    }
    if base_run is not None and base_id not in shown:
        shown.add(base_id)
        section["baseline"] = _baseline(base_run)
        section["baseline"]["sample"] = _baseline_sample(tracker, base_run, where.tmp)
    if base_run is not None:
        section["best"] = _best(tracker, parent, table, base_run, where.tmp)
    return section, res.paths


def write_report(
    tracker: T.Tracker,
    sweeps: list[T.RunInfo],
    out: Path,
    alpha: float | None = None,
    margin: float | None = None,
) -> ReportResult:
    out = Path(out)
    fmt = report_format(out)
    notes: list[str] = []
    figures: list[Path] = []
    sections: list[dict[str, Any]] = []
    shown: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="sweep-report-") as tmp:
        tmpdir = Path(tmp)
        fig_root = out.parent / f"{out.stem}-figures" if fmt == "md" else tmpdir / "figures"
        where = _Where(out, fmt, fig_root, tmpdir)
        for parent in sweeps:
            table = sweep_table(tracker, parent, alpha, margin)
            section, paths = _section(tracker, parent, table, where, shown)
            notes += [f"{parent.name}: {n}" for n in section["notes"]]
            figures += paths
            sections.append(section)
        text = (
            _environment()
            .get_template(f"report.{fmt}.j2")
            .render(
                title=f"Sweep report: experiment '{tracker.experiment_name}'",
                store=tracker.uri,
                written=_dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
                method="Lower val loss is better.",
                sections=sections,
                summary=[
                    (s["name"], s["run_id"], s["best"]["summary"] if s["best"] else "no baseline")
                    for s in sections
                ],
                nan=math.nan,
            )
        )
        write_atomic(out, text)
    return ReportResult(out, [p.run_id for p in sweeps], figures if fmt == "md" else [], notes)
