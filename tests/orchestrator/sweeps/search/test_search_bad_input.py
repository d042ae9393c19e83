"""`sweep search` with bad input, as a user types it: one clear line, exit 2, and nothing
recorded (no study in the journal, no parent run)."""

from __future__ import annotations

import pytest
from clitools import one_error_line, sweep

from orchestrator.studies import JOURNAL_NAME


def studies_in(tracker) -> list[str]:
    import optuna

    from orchestrator.studies import open_storage

    if not (tracker.store_dir / JOURNAL_NAME).exists():
        return []
    return [
        s.study_name for s in optuna.get_all_study_summaries(open_storage(None, tracker.store_dir))
    ]


SPACES = {
    "lognormal": (
        '[lr]\ntype = "lognormal"\nlow = 1e-4\nhigh = 1e-2\n',
        "unknown type 'lognormal'",
    ),
    "log-string": (
        '[lr]\nlow = 1e-4\nhigh = 1e-2\nlog = "false"\n',
        "lr: log must be true or false (a TOML boolean), got 'false'",
    ),
    "int-step": (
        "[n_layer]\nlow = 2\nhigh = 4\nstep = 0.5\n",
        "n_layer: step must be a whole number for an integer key (got 0.5)",
    ),
    "int-type-on-float": (
        '[dropout]\ntype = "int"\nlow = 0.0\nhigh = 0.3\n',
        'dropout: type = "int", but this table gives a range of float values',
    ),
    "log-on-list": ("[lr]\nvalues = [1e-3, 2e-3]\nlog = true\n", "log apply to a range"),
}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seed", "-1"], "'--seed': Input should be greater than or equal to 0"),
        (["--seed", "4294967296"], "'--seed': Input should be less than or equal to 4294967295"),
        (["--timeout", "nan"], "--timeout must be a finite number of seconds > 0 (got nan)"),
        (["--timeout", "inf"], "--timeout must be a finite number of seconds > 0 (got inf)"),
        (["--timeout", "0"], "--timeout must be a finite number of seconds > 0"),
        (["--workers", "1000"], "--workers 1000 is more than this machine can run: at most"),
        *[([f"@{name}"], message) for name, (_, message) in SPACES.items()],
    ],
    ids=lambda x: x[0] if isinstance(x, list) else None,
)
def test_bad_search_input_is_one_line_exit_2_and_records_nothing(
    search_env, tmp_path, args, message
):
    tracker, _, space = search_env
    if args[0].startswith("@"):  # a bad space file
        text, _ = SPACES[args[0][1:]]
        bad = tmp_path / "bad.toml"
        bad.write_text(text, encoding="utf-8")
        args = ["--space", str(bad)]
    else:
        args = ["--space", str(space), *args]
    runs, studies = len(tracker.search()), studies_in(tracker)
    r = sweep("search", "--trials", "2", "--study", "refused", *args, "--tracking-uri", tracker.uri)
    assert r.exit_code == 2, r.output
    assert message in one_error_line(r), r.output
    assert len(tracker.search()) == runs
    assert studies_in(tracker) == studies and "refused" not in studies


def test_the_worker_limit_names_cores_and_memory():
    from orchestrator.sweeps.search.context import worker_limit

    limit, why = worker_limit()
    assert limit >= 1 and "CPU core(s)" in why and "GiB of memory available" in why


def test_a_trial_too_big_for_memory_fails_alone(search_env, tmp_path):
    """A corner of the space whose model cannot fit the machine's memory (65536-wide
    embeddings: ~10^11 parameters) fails as one trial, with the memory check's reason; the
    study goes on with the next point instead of ending with an error."""
    from envs import env_of

    from orchestrator import tracking as T
    from orchestrator.sweeps.search import run_search

    tracker, baseline, _ = search_env
    space = tmp_path / "wide.toml"
    space.write_text("[n_embed]\nvalues = [32, 65536, 48]\n", encoding="utf-8")
    result = run_search(
        env_of(tracker),
        trials=3,
        space=str(space),
        sampler="grid",
        pruner="none",
        study_name="too-big",
        storage=f"journal:{tmp_path / 'j.log'}",
        baseline_id=baseline.run_id,
        plots=False,
    )
    assert result.counts["complete"] == 2 and result.counts["fail"] == 1, result.counts
    failed = [r for r in tracker.children(result.parent_id) if r.state is T.RunState.FAILED]
    (big,) = failed
    assert "the model is too big for cpu" in big.tags[T.TAG_REASON]
    assert tracker.get_run(result.parent_id).state is T.RunState.COMPLETE
