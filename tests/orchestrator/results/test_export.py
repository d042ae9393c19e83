"""`sweep table -o FILE`: every format is written, and the data formats round-trip."""

from __future__ import annotations

import statistics

import pandas as pd
import pytest
from smoke_store import smoke_store  # noqa: F401  (fixture)
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.results.export import FORMATS

runner = CliRunner()
NUMERIC = [
    "seeds",
    "best_val_loss",
    "best_val_loss_std",
    "delta",
    "delta_pct",
    "best_val_ppl",
    "final_train_loss",
    "best_step",
    "wall_s",
    "params",
    "p_value",
    "baseline_val_loss",
    "compute_to_target",
    "compute_to_target_low",
    "compute_to_target_high",
]
SUFFIX = {
    "table": "txt",
    "md": "md",
    "csv": "csv",
    "json": "json",
    "html": "html",
    "parquet": "parquet",
}


def _tracker(store):
    from orchestrator.tracking import Tracker

    return Tracker(store.uri, store.experiment, create=False)


def _frame(store):
    from orchestrator.results.table import sweep_table

    tracker = _tracker(store)
    return sweep_table(tracker, tracker.get_run(store.sweep_id)).to_frame()


def _read(path, fmt):
    if fmt == "csv":
        return pd.read_csv(path, dtype={"value": str})
    if fmt == "json":
        return pd.read_json(path, orient="records", dtype={"value": str})
    return pd.read_parquet(path)


def test_every_format_is_written(smoke_store, tmp_path):  # noqa: F811
    df = _frame(smoke_store)
    for fmt in FORMATS:
        out = tmp_path / f"table.{SUFFIX[fmt]}"
        res = runner.invoke(
            app, ["table", "--tracking-uri", smoke_store.uri, "--knob", "dropout", "-o", str(out)]
        )
        assert res.exit_code == 0, (fmt, res.output)
        assert f"({fmt}, {len(df)} rows)" in res.output
        data = out.read_bytes()
        assert data
        if fmt in ("table", "md", "html"):
            text = data.decode()
            for value, verdict in zip(df["value"], df["verdict"], strict=True):
                assert value in text and verdict in text, (fmt, value, verdict)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary files left"


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_data_formats_round_trip(smoke_store, tmp_path, fmt):  # noqa: F811
    df = _frame(smoke_store)
    out = tmp_path / f"table.{fmt}"
    res = runner.invoke(
        app,
        [
            "table",
            "--tracking-uri",
            smoke_store.uri,
            "--sweep",
            smoke_store.sweep_id,
            "--format",
            fmt,
            "-o",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    back = _read(out, fmt)
    assert list(back.columns) == list(df.columns)
    assert back["value"].tolist() == df["value"].tolist()
    assert back["verdict"].tolist() == df["verdict"].tolist()
    assert back["run_ids"].tolist() == df["run_ids"].tolist()
    for col in NUMERIC:
        want = df[col].astype(float)
        if fmt == "json":  # JSON has no infinity: `never` (compute_to_target) reads back null
            want = want.replace([float("inf")], float("nan"))
        pd.testing.assert_series_equal(
            back[col].astype(float),
            want,
            check_exact=False,
            rtol=1e-12,
            check_names=False,
        )


def test_table_numbers_are_the_mlflow_metrics(smoke_store, tmp_path):  # noqa: F811
    """The exported mean best val loss of each row is the mean of its runs' MLflow metric."""
    tracker = _tracker(smoke_store)
    out = tmp_path / "table.csv"
    res = runner.invoke(
        app, ["table", "--tracking-uri", smoke_store.uri, "--knob", "dropout", "-o", str(out)]
    )
    assert res.exit_code == 0, res.output
    back = pd.read_csv(out, dtype={"value": str})
    for _, row in back.iterrows():
        runs = [tracker.get_run(rid) for rid in row["run_ids"].split()]
        losses = [r.metrics["best_val_loss"] for r in runs]
        assert row["seeds"] == len(losses) == 2
        assert row["best_val_loss"] == pytest.approx(statistics.fmean(losses), rel=1e-12)
        assert row["best_val_loss_std"] == pytest.approx(statistics.stdev(losses), rel=1e-12)


def test_binary_format_needs_a_file(smoke_store):  # noqa: F811
    res = runner.invoke(app, ["table", "--tracking-uri", smoke_store.uri, "--format", "parquet"])
    assert res.exit_code == 2 and "binary" in res.output


def test_html_export_declares_its_charset(smoke_store, tmp_path):  # noqa: F811
    out = tmp_path / "t.html"
    r = runner.invoke(app, ["table", "--tracking-uri", smoke_store.uri, "-o", str(out)])
    assert r.exit_code == 0, r.output
    raw = out.read_bytes()
    assert raw.startswith(b'<meta charset="utf-8">')
    # the charset a reader is told is the one the bytes are in: "±" reads as "±", not "Â±"
    import re

    charset = re.search(rb'<meta charset="([^"]+)">', raw).group(1).decode()
    text = raw.decode(charset)
    assert "±" in text and "Â" not in text


def test_a_suffix_that_is_not_a_format_is_refused(smoke_store, tmp_path):  # noqa: F811
    for name in ("t.xlsx", "t.tsv"):
        r = runner.invoke(
            app, ["table", "--tracking-uri", smoke_store.uri, "-o", str(tmp_path / name)]
        )
        assert r.exit_code == 2 and "cannot tell the format" in r.output, r.output
    assert list(tmp_path.iterdir()) == []


def test_the_interval_header_names_the_level_used(smoke_store):  # noqa: F811
    args = ["table", "--tracking-uri", smoke_store.uri, "--knob", "dropout"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0 and "delta [95% simultaneous CI]" in r.output, r.output
    for fmt in ("table", "md", "html"):  # a separate analysis at another alpha says its level
        r = runner.invoke(app, [*args, "--alpha", "0.1", "--format", fmt])
        assert r.exit_code == 0 and "delta [90% simultaneous CI]" in r.output, r.output
        assert "95%" not in r.output and "verdict (separate analysis)" in r.output, r.output


def test_value_is_text_and_whole_numbers_stay_whole_in_every_file_format(smoke_store, tmp_path):  # noqa: F811
    """`value` is one type (text) in CSV, JSON and Parquet; seeds, best_step, params and
    seeds_needed are written as integers (30, not 30.0), empty where there is none."""
    import csv
    import json

    paths = {}
    for fmt in ("csv", "json", "parquet"):
        paths[fmt] = tmp_path / f"t.{fmt}"
        r = CliRunner().invoke(
            app, ["table", "--tracking-uri", smoke_store.uri, "-o", str(paths[fmt])]
        )
        assert r.exit_code == 0, r.output
    with open(paths["csv"], newline="") as f:
        rows = list(csv.reader(f, quoting=csv.QUOTE_NONNUMERIC))
    header, first = rows[0], rows[1]
    assert first[header.index("value")] == "0.0"  # quoted: text, not the number 0.0
    with open(paths["csv"], newline="") as f:
        raw = list(csv.reader(f))[1]  # the cells as written
    assert raw[header.index("best_step")] == "30" and raw[header.index("params")].isdigit()
    records = json.loads(paths["json"].read_text())
    assert {type(r["value"]) for r in records} == {str}
    assert records[0]["best_step"] == 30 and isinstance(records[0]["params"], int)
    pq = pd.read_parquet(paths["parquet"])
    assert pq["value"].map(type).eq(str).all()
    assert str(pq["best_step"].dtype) == "Int64" and str(pq["seeds_needed"].dtype) == "Int64"
    back = pd.read_csv(paths["csv"], dtype={"value": str})
    assert list(back["value"]) == list(pq["value"])


def test_a_long_reason_does_not_widen_the_terminal_table(smoke_store):  # noqa: F811
    import dataclasses

    from orchestrator import tracking as T
    from orchestrator.results.export import CELL_WIDTH, render
    from orchestrator.results.table import sweep_table

    tracker = T.Tracker(smoke_store.uri, smoke_store.experiment, create=False)
    table = sweep_table(tracker, tracker.get_run(smoke_store.sweep_id))
    table.rows[-1] = dataclasses.replace(table.rows[-1], label="pruned: " + "x" * 300)
    text = render(table, "table")
    narrow = render(sweep_table(tracker, tracker.get_run(smoke_store.sweep_id)), "table")
    assert max(map(len, text.splitlines())) <= max(map(len, narrow.splitlines())) + CELL_WIDTH
    assert "x" * CELL_WIDTH not in text and "…" in text
