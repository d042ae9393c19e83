"""`sweep report`: one document with tables, verdicts, figures, best config and samples."""

from __future__ import annotations

import re

from smoke_store import smoke_store  # noqa: F401  (fixture)
from typer.testing import CliRunner

from orchestrator.cli import app

runner = CliRunner()


def _table(store):
    from orchestrator.results.table import sweep_table
    from orchestrator.tracking import Tracker

    tracker = Tracker(store.uri, store.experiment, create=False)
    return sweep_table(tracker, tracker.get_run(store.sweep_id)).to_frame()


def _report(store, *args):
    return runner.invoke(
        app, ["report", "--tracking-uri", store.uri, "--experiment", store.experiment, *args]
    )


def test_html_report_is_one_file_with_every_row_and_figure(smoke_store, tmp_path):  # noqa: F811
    out = tmp_path / "report.html"
    res = _report(smoke_store, "-o", str(out))
    assert res.exit_code == 0, res.output
    text = out.read_text(encoding="utf-8")
    df = _table(smoke_store)
    rows = re.findall(r"<tr>.*?</tr>", text.replace("\n", ""), flags=re.S)
    for value, verdict in zip(df["value"], df["verdict"], strict=True):
        assert any(f"<td>{value}</td>" in r and f"<td>{verdict}</td>" in r for r in rows), (
            value,
            verdict,
        )
    assert text.count("data:image/png;base64,") == 3  # curves by step and FLOPs, deltas
    assert "<img" in text and 'src="data:image/png;base64,' in text and '.png"' not in text
    assert "dataset.sha256" in text and "dropout" in text  # baseline config and dataset
    # a ready-to-run command only for a `better` verdict; otherwise: keep the baseline
    verdict = df[df["value"] == "0.2"]["verdict"].iloc[0]
    if verdict == "better":
        assert "sweep baseline --profile smoke" in text and "--set dropout=0.2" in text
    else:
        assert "keep the baseline" in text and "sweep baseline --profile" not in text
    assert "interval lies inside ±0.02 nats" in text  # the sentence under the table
    assert text.count("samples/step-30.txt") == 2  # baseline's and best variant's last samples
    assert list(tmp_path.iterdir()) == [out]  # nothing beside it: one mailable file


def _png_description(data: bytes) -> str:
    """The Description text chunk of a PNG (what the delta figure was coloured by)."""
    import zlib

    pos, found = 8, {}
    while pos < len(data):
        size = int.from_bytes(data[pos : pos + 4], "big")
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + size]
        if kind == b"tEXt":
            key, _, value = body.partition(b"\0")
            found[key.decode()] = value.decode("latin-1")
        elif kind == b"zTXt":
            key, _, rest = body.partition(b"\0")
            found[key.decode()] = zlib.decompress(rest[1:]).decode("latin-1")
        elif kind == b"iTXt":
            key, _, rest = body.partition(b"\0")
            flag, rest = rest[0], rest[2:]
            _, _, rest = rest.partition(b"\0")
            _, _, text = rest.partition(b"\0")
            found[key.decode()] = (zlib.decompress(text) if flag else text).decode("utf-8")
        pos += 12 + size
    return found.get("Description", "")


def test_report_figures_say_what_its_tables_say(smoke_store, tmp_path):  # noqa: F811
    """`report --margin/--alpha` builds one table per sweep and draws its delta figure from
    it: the verdicts the figure is coloured by are the table's beside it (issue 15)."""
    import base64

    from orchestrator.results.table import sweep_table
    from orchestrator.tracking import Tracker

    tracker = Tracker(smoke_store.uri, smoke_store.experiment, create=False)
    parent = tracker.get_run(smoke_store.sweep_id)
    default = sweep_table(tracker, parent)
    # every row inside ±10 nats: at alpha 0.5 one row's own anytime interval is finite from
    # two pairs on (at 0.05 it needs four)
    wide = sweep_table(tracker, parent, alpha=0.5, margin=10.0)
    assert {r.label for r in wide.variants} == {"equivalent"}
    assert [r.label for r in default.variants] != [r.label for r in wide.variants]
    out = tmp_path / "r.html"
    res = _report(
        smoke_store, "--sweep", parent.run_id, "--alpha", "0.5", "--margin", "10", "-o", str(out)
    )
    assert res.exit_code == 0, res.output
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', out.read_text(encoding="utf-8"))
    described = [d for d in (_png_description(base64.b64decode(i)) for i in images) if d]
    expected = "verdicts: " + "; ".join(f"{r.value}={r.label}" for r in wide.variants)
    assert described == [expected]
    assert "equivalent" in expected and "inconclusive" not in expected


def test_markdown_report_references_pngs_beside_it(smoke_store, tmp_path):  # noqa: F811
    out = tmp_path / "report.md"
    res = _report(smoke_store, "--sweep", smoke_store.sweep_id, "-o", str(out))
    assert res.exit_code == 0, res.output
    text = out.read_text(encoding="utf-8")
    df = _table(smoke_store)
    lines = [ln for ln in text.splitlines() if ln.startswith("| dropout")]
    for value, verdict in zip(df["value"], df["verdict"], strict=True):
        assert any(f"| {value} " in ln and f" {verdict} " in ln for ln in lines), (
            value,
            verdict,
            lines,
        )
    refs = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", text)
    assert len(refs) == 3
    for ref in refs:
        assert (tmp_path / ref).is_file(), ref


def test_report_default_path_and_bad_suffix(smoke_store, tmp_path):  # noqa: F811
    res = _report(smoke_store, "-o", str(tmp_path / "report.pdf"))
    assert res.exit_code == 2 and ".md or .html" in res.output
    res = _report(smoke_store)
    assert res.exit_code == 0, res.output
    assert (smoke_store.dir / "sweep-reports" / "char-gpt.html").is_file()


def test_ready_command_starts_from_the_nearest_profile():
    from orchestrator.config import build
    from orchestrator.results.best import config_changes, ready_command

    base = {k: str(v) for k, v in build("smoke", {"max_steps": "30"}).to_flat().items()}
    best = {**base, "dropout": "0.2", "seed": "2"}
    changes = config_changes(base, best)
    assert changes == {"dropout": ("0.0", "0.2")}  # the seed is not a configuration change
    cmd = ready_command(base, changes, seeds=2)
    assert cmd == "sweep baseline --profile smoke --set dropout=0.2 --set max_steps=30 --seeds 2"


def test_report_opens_with_a_summary_and_shows_the_baselines_sample_once(smoke_store, tmp_path):  # noqa: F811
    """Two reports of the same sweep's baseline (the md and html forms of one experiment):
    a summary at the top, one line per sweep with its best row's verdict, knob=value; the
    baseline's sample in the baseline's part only."""
    for name in ("r.md", "r.html"):
        out = tmp_path / name
        res = _report(smoke_store, "-o", str(out))
        assert res.exit_code == 0, res.output
        text = out.read_text(encoding="utf-8")
        summary = text.index("Summary")
        assert summary < text.index("Baseline ") < text.index("Sweep ablate:dropout")
        head = text[summary : text.index("Baseline ")]
        assert "ablate:dropout" in head and "dropout=0.2" in head, head
        assert re.search(r"(better|worse|equivalent|inconclusive|single seed): dropout=", head)
        base_part = text[text.index("Baseline ") : text.index("Sweep ablate:dropout")]
        assert "Sample (" in base_part
        assert text.count("Sample (") == 1  # the baseline's, once
        assert "best variant (dropout=0.2" in text


def test_the_baselines_own_configuration_is_never_suggested_for_confirmation():
    from orchestrator import tracking as T
    from orchestrator.results.best import Best
    from orchestrator.results.verdicts import Verdict

    trial0 = T.RunInfo("r0", "trial-0", "FINISHED", {}, {}, {}, 0, "")
    search = T.RunInfo("p", "search:s", "FINISHED", {}, {}, {T.TAG_ROLE: T.Role.SEARCH}, 0, "")
    own = Best("trial-0: dropout=0", 3.0, 3.0, trial0, Verdict.SINGLE_SEED, "+0.0000")
    assert own.is_baseline_config
    advice = own.advice(search)
    assert "sweep confirm" not in advice and "keep the baseline" in advice
    other = Best("trial-3: dropout=0.1", 2.9, 3.0, trial0, Verdict.SINGLE_SEED, "-0.1000")
    other.changes = {"dropout": ("0.0", "0.1")}
    assert "sweep confirm --sweep p" in other.advice(search)
