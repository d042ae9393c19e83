"""Bad input refused as usage errors, deleted runs refused, odd experiment names kept inside
the store (issue 17): real commands on real stores."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from clitools import one_error_line, sweep
from envs import TINY_SETS, short_corpus
from smoke_store import smoke_store  # noqa: F401  (fixture)

from orchestrator import tracking as T


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["sample", "--run", "x", "--seed", "99999999999999999999"],
            "sweep sample: Invalid value for '--seed': Input should be less than or equal to "
            "4294967295",
        ),
        (
            ["ui", "--port", "70000"],
            "sweep ui: Invalid value for '--port': Input should be less than or equal to 65535",
        ),
        (["ui", "--port", "0"], "Invalid value for '--port'"),
        (["search", "--seed", "-1"], "sweep search: Invalid value for '--seed'"),
    ],
)
def test_out_of_range_numbers_are_usage_errors(args, message):
    """Before: a ValueError/OverflowError after the store was opened (or the download)."""
    r = sweep(*args)
    assert r.exit_code == 2, r.output
    assert message in one_error_line(r)


def test_sample_checks_its_seed_before_downloading_anything(smoke_store):  # noqa: F811
    from orchestrator.errors import UserError
    from orchestrator.results.sample import sample_run

    tracker = T.Tracker(smoke_store.uri, smoke_store.experiment, create=False)
    from model.errors import ConfigError

    with pytest.raises(ConfigError, match=r"seed must be an integer in \[0, 4294967295\]"):
        sample_run(tracker, "no-such-run", 0.8, 50, 10, None, 2**64)  # not "no run with id"
    with pytest.raises(UserError, match="no run with id"):
        sample_run(tracker, "no-such-run", 0.8, 50, 10, None, 1)


def test_a_deleted_sweep_is_refused_by_table_plot_and_sample(smoke_store, tmp_path):  # noqa: F811
    tracker = T.Tracker(smoke_store.uri, smoke_store.experiment, create=False)
    sid = smoke_store.sweep_id
    child = tracker.children(sid)[0]
    before = tracker.artifact_sizes(sid)
    tracker.client.delete_run(sid)
    tracker.client.delete_run(child.run_id)
    try:
        common = ["--tracking-uri", smoke_store.uri]
        for args in (
            ["table", "--sweep", sid],
            ["plot", "--sweep", sid, "-o", str(tmp_path / "plots")],
            ["sample", "--run", child.run_id, "--max-new-tokens", "5"],
        ):
            r = sweep(*args, *common)
            assert r.exit_code == 2, (args, r.output)
            line = one_error_line(r)
            assert "is deleted: restore it first (`mlflow runs restore --run-id" in line, line
        assert tracker.artifact_sizes(sid) == before  # plot wrote nothing into it
        assert not (tmp_path / "plots").exists()
    finally:
        tracker.client.restore_run(sid)
        tracker.client.restore_run(child.run_id)


@pytest.mark.parametrize("name", ["..", ".", "../../etc"])
def test_an_experiment_name_never_puts_artifacts_outside_mlruns(tmp_path, name):
    tracker = T.Tracker(f"sqlite:///{tmp_path}/mlflow.db", name)
    run_id = tracker.create_run("r")
    tracker.log_text(run_id, "x\n", "note.txt")
    (written,) = [p for p in tmp_path.rglob("note.txt")]
    mlruns = (tmp_path / "mlruns").resolve()
    assert written.resolve().is_relative_to(mlruns)
    assert written.resolve().parent.parent.parent.parent == mlruns  # mlruns/<exp>/<run>/artifacts


def test_version_ends_with_a_newline():
    out = subprocess.run(
        [str(Path(sys.executable).with_name("sweep")), "--version"], capture_output=True
    ).stdout
    assert out.startswith(b"sweep ") and out.endswith(b"\n") and out.count(b"\n") == 1, out


@pytest.mark.parametrize(
    ("knob", "hint"),
    [("nosuch", None), ("dropot", "dropout"), ("save_best", None), ("depth_width", "depth-width")],
)
def test_a_knob_that_is_no_knob_is_named_not_suggested_for_an_ablation(tmp_path, knob, hint):
    """Only knobs `sweep ablate` takes are suggested: `save_best` is a config key, no knob."""
    store = f"sqlite:///{tmp_path}/mlflow.db"
    T.Tracker(store, "char-gpt")
    for cmd in ("table", "plot", "ablate"):
        r = sweep(cmd, "--knob", knob, "--tracking-uri", store)
        assert r.exit_code == 2
        line = one_error_line(r)
        assert f"unknown knob '{knob}'" in line, line
        assert "sweep ablate" not in line
        assert (f"(did you mean '{hint}'?)" in line) if hint else "did you mean" not in line


def test_table_and_plot_find_the_ablation_of_a_knob_that_is_no_config_key(tmp_path, corpus_path):
    """`depth-width` is a knob (n_layer x n_embed together) and no config key."""
    store = f"sqlite:///{tmp_path}/mlflow.db"
    data = ["--data", str(short_corpus(corpus_path, tmp_path)), "--tracking-uri", store]
    r = sweep("baseline", "--profile", "smoke", *TINY_SETS, *data)
    assert r.exit_code == 0, r.output
    r = sweep("ablate", "--knob", "depth-width", "--values", "1x32", "--tracking-uri", store)
    assert r.exit_code == 0, r.output
    r = sweep("table", "--knob", "depth-width", "--format", "csv", "--tracking-uri", store)
    assert r.exit_code == 0, r.output
    assert '"depth-width","1x32"' in r.output
    r = sweep(
        "plot", "--knob", "depth-width", "-o", str(tmp_path / "plots"), "--tracking-uri", store
    )
    assert r.exit_code == 0, r.output
    assert list((tmp_path / "plots").glob("*.png"))


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--max-new-tokens", "1000000000000", "max_new_tokens must be an integer in [0, 100000]"),
        ("--temperature", "0", "temperature"),
    ],
)
def test_sample_settings_are_refused_before_the_store_is_read(tmp_path, option, value, message):
    """Checked first: not 'no run with id' (the store read), not a download, not a hang."""
    store = f"sqlite:///{tmp_path}/mlflow.db"
    T.Tracker(store, "char-gpt")
    r = sweep("sample", "--run", "no-such-run", option, value, "--tracking-uri", store)
    assert r.exit_code == 2
    line = one_error_line(r)
    assert message in line and "no run with id" not in line, line
