"""`sweep sample`: a checkpoint file as well as a run id, --best naming the run it sampled,
the course's --top_k/--max_new_tokens spellings, and its named presets (real store, real
checkpoints)."""

from __future__ import annotations

import pytest
from smoke_store import smoke_store  # noqa: F401  (fixture)
from typer.testing import CliRunner

from orchestrator import tracking as T
from orchestrator.cli import app
from orchestrator.results.sample import PRESETS, settings


def run(*args):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_presets_are_the_course_settings_and_explicit_values_win():
    assert PRESETS == {"conservative": (0.7, 50), "balanced": (0.9, 100), "spicier": (1.1, 0)}
    assert settings(None, None, None) == (0.8, 50)
    assert settings("spicier", None, None) == (1.1, 0)
    assert settings("balanced", 0.5, None) == (0.5, 100)


def test_a_checkpoint_file_samples_like_its_run(smoke_store, tmp_path):  # noqa: F811
    tracker = T.Tracker(smoke_store.uri, smoke_store.experiment, create=False)
    child = tracker.children(smoke_store.sweep_id)[0]
    ckpt = tracker.download(child.run_id, "checkpoints/best.pt", tmp_path)
    common = ["--max_new_tokens", "40", "--top_k", "10", "--prompt", "KING:", "--seed", "7"]
    by_run = run("sample", "--run", child.run_id, "--tracking-uri", smoke_store.uri, *common)
    by_file = run("sample", "--checkpoint", str(ckpt), *common)
    assert by_run.exit_code == by_file.exit_code == 0, (by_run.output, by_file.output)
    text = by_file.stdout.strip()
    assert text.startswith("KING:") and len(text) == len("KING:") + 40
    assert by_run.stdout.strip() == text
    missing = run("sample", "--checkpoint", str(tmp_path / "nope.pt"))
    assert missing.exit_code == 2 and "no checkpoint file at" in missing.output


def test_best_says_which_run_it_sampled(smoke_store):  # noqa: F811
    from orchestrator.results.best import best_run

    tracker = T.Tracker(smoke_store.uri, smoke_store.experiment, create=False)
    best = best_run(tracker)
    r = run("sample", "--best", "--max-new-tokens", "5", "--tracking-uri", smoke_store.uri)
    assert r.exit_code == 0, r.output
    assert f"note: sampling the best run: {best.name} ({best.run_id}), best_val_loss" in r.stderr


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_a_preset_samples_as_its_settings_do(smoke_store, tmp_path, preset):  # noqa: F811
    tracker = T.Tracker(smoke_store.uri, smoke_store.experiment, create=False)
    child = tracker.children(smoke_store.sweep_id)[0]
    ckpt = tracker.download(child.run_id, "checkpoints/best.pt", tmp_path)
    t, k = PRESETS[preset]
    common = ["--checkpoint", str(ckpt), "--max-new-tokens", "60", "--seed", "3"]
    by_name = run("sample", *common, "--preset", preset)
    by_values = run("sample", *common, "--temperature", str(t), "--top-k", str(k))
    assert by_name.exit_code == by_values.exit_code == 0
    assert by_name.stdout == by_values.stdout
    bad = run("sample", *common, "--preset", "wild")
    assert bad.exit_code == 2 and "choose one of conservative, balanced, spicier" in bad.output
