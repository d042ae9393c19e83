"""`--launcher slurm` where no cluster is needed: the refusals made before anything is
recorded, the Slurm options from a profile's [slurm] table and the flags, how an array task
claims its run (also after a requeue), and the signals inside a task. The commands on a
real cluster: tests/e2e/test_slurm_commands.py."""

from __future__ import annotations

import os
import signal
import sys
import time
import weakref

import pytest
from clitools import one_error_line, sweep

from orchestrator import tracking as T
from orchestrator.config import build, slurm_table
from orchestrator.errors import Interrupted
from orchestrator.execution.slurm import TaskSignals
from orchestrator.execution.slurm_options import SlurmOptions
from orchestrator.execution.slurm_runs import claim
from orchestrator.execution.spec import Outcome, RunSpec
from orchestrator.tracking import RunState

PROFILE = """
[model]
n_layer = 2
n_head = 2
n_embed = 64
block_size = 32

[train]
max_steps = 60
batch_size = 16

[slurm]
partition = "gpu"
time = "4:00:00"
cpus = 8
sbatch = ["--qos=normal"]
"""


@pytest.fixture(scope="module")
def never_written(tmp_path_factory):
    """A store the refusals below must leave empty (one for the module: a store takes a
    while to create on a small machine)."""
    return T.Tracker(f"sqlite:///{tmp_path_factory.mktemp('refused')}/mlflow.db", "char-gpt")


@pytest.fixture(scope="module")
def store_of_claims(tmp_path_factory):
    """A store for the claim tests (each opens its own sweep in it)."""
    return T.Tracker(f"sqlite:///{tmp_path_factory.mktemp('claims')}/mlflow.db", "char-gpt")


def test_a_local_sqlite_store_is_refused_before_anything_is_recorded(never_written):
    tracker = never_written
    args = ["ablate", "--knob", "dropout", "--launcher", "slurm", "--tracking-uri", tracker.uri]
    result = sweep(*args)

    assert result.exit_code == 2
    assert one_error_line(result) == (
        f"error: --launcher slurm: the MLflow store {tracker.uri} is a local SQLite file, "
        "which jobs on other machines cannot share safely; start an MLflow tracking server "
        "and pass --tracking-uri http://HOST:5000"
    )
    assert tracker.search("") == []


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["ablate", "--knob", "dropout", "--slurm-time", "10"],
            "--slurm-time needs --launcher slurm",
        ),
        (["confirm", "--slurm-profile", "mid-gpu"], "--slurm-profile needs --launcher slurm"),
        (["search", "--detach"], "--detach needs --launcher slurm"),
        (
            ["search", "--launcher", "slurm", "--detach", "--confirm", "2"],
            "--confirm waits for the search to finish: not with --detach",
        ),
        (
            ["ablate", "--knob", "dropout", "--launcher", "slurm", "--slurm-cpus", "0"],
            "--slurm-cpus = 0: expected a whole number of CPUs per task, at least 1",
        ),
    ],
)
def test_launcher_flags_that_cannot_hold_are_one_line_each(never_written, args, line):
    tracker = never_written
    result = sweep(*args, "--tracking-uri", tracker.uri)

    assert result.exit_code == 2
    assert one_error_line(result) == f"error: {line}"
    assert tracker.search("") == []


def test_a_bad_slurm_table_names_the_profile_and_the_key(never_written, tmp_path):
    tracker = never_written
    bad = tmp_path / "cluster.toml"
    bad.write_text(PROFILE.replace("partition =", "partion ="), encoding="utf-8")
    args = ["ablate", "--knob", "dropout", "--launcher", "slurm", "--slurm-profile", str(bad)]
    result = sweep(*args, "--tracking-uri", tracker.uri)

    assert result.exit_code == 2
    assert one_error_line(result).startswith(
        f"error: [slurm] in profile {bad}: unknown key 'partion' (known: partition, time, "
    )


def test_a_profile_s_slurm_table_gives_the_options_and_the_flags_win(tmp_path):
    path = tmp_path / "cluster.toml"
    path.write_text(PROFILE, encoding="utf-8")

    cfg = build(str(path), {})  # the [slurm] table is not part of a run's config
    label, table = slurm_table(str(path))
    options = SlurmOptions.from_table(table, f"profile {label}").merged(
        time="30", cpus=None, sbatch=("--exclusive",)
    )

    assert cfg.gpt.n_layer == 2 and "partition" not in cfg.to_flat()
    assert table == {"partition": "gpu", "time": "4:00:00", "cpus": 8, "sbatch": ["--qos=normal"]}
    params = options.executor_parameters("sweep")
    assert (params["partition"], params["time"], params["cpus_per_task"]) == ("gpu", 30, 8)
    extra = params["additional_parameters"]
    assert extra == {"requeue": True, "qos": "normal", "exclusive": True}
    assert slurm_table("smoke") == ("smoke", {})  # a profile without one


# -- how an array task claims its run ---------------------------------------------------
@pytest.fixture
def tracker(store_of_claims):
    return store_of_claims


@pytest.fixture
def opened(tracker, smoke_cfg):
    """(spec, parent id): a run opened by the submitting side, as a sweep's open_run does."""
    parent = tracker.create_run("ablate:dropout")
    spec = RunSpec(smoke_cfg, "dropout=0.1", {T.TAG_ROLE: T.Role.ABLATION_RUN})
    run_id = tracker.create_run(spec.name, parent_id=parent, tags=dict(spec.tags))
    return RunSpec(spec.cfg, spec.name, spec.tags, run_id=run_id), parent


def in_task(monkeypatch, array: str, task: str) -> None:
    """The environment Slurm gives array task <array>_<task>."""
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", array)
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", task)
    monkeypatch.setenv("SLURM_JOB_ID", str(int(array) + int(task) + 1))


def test_a_task_claims_the_run_the_submitting_side_opened(tracker, opened, monkeypatch):
    spec, _ = opened
    in_task(monkeypatch, "41", "3")

    assert claim(tracker, spec) == spec

    run = tracker.get_run(spec.run_id)
    assert run.state is RunState.RUNNING
    assert run.tags[T.TAG_SLURM_JOB] == "41_3" and run.tags[T.TAG_PID] == str(os.getpid())


def test_a_requeued_task_trains_in_a_new_run_and_a_finished_one_stands(
    tracker, opened, monkeypatch
):
    spec, parent = opened
    in_task(monkeypatch, "41", "3")
    claim(tracker, spec)  # the first run of the task, then Slurm requeues it (SIGKILL)

    again = claim(tracker, spec)  # the same call again

    assert again.run_id not in (None, spec.run_id) and again.name == spec.name
    first = tracker.get_run(spec.run_id)
    assert first.state is RunState.KILLED
    assert first.tags[T.TAG_REASON] == "its Slurm task 41_3 was requeued mid-run"
    second = tracker.get_run(again.run_id)
    assert second.parent_id == parent and second.tags[T.TAG_SLURM_JOB] == "41_3"
    assert second.tags[T.TAG_ROLE] == T.Role.ABLATION_RUN
    # the second run finished, but the task was requeued before it returned: it stands
    tracker.log_metrics(again.run_id, {"best_val_loss": 2.5}, 60)
    tracker.end_run(again.run_id, RunState.COMPLETE)
    third = claim(tracker, spec)
    assert third == Outcome(again.run_id, spec.name, RunState.COMPLETE, {"best_val_loss": 2.5})
    assert len(tracker.children(parent)) == 2


def test_a_run_ended_before_its_task_started_is_not_trained(tracker, opened, monkeypatch):
    spec, _ = opened
    tracker.end_run(spec.run_id, RunState.KILLED, "interrupted (Ctrl-C)")
    in_task(monkeypatch, "41", "0")

    out = claim(tracker, spec)

    assert out == Outcome(
        spec.run_id, spec.name, RunState.KILLED, {}, "interrupted (Ctrl-C)", new=False
    )
    assert tracker.get_run(spec.run_id).tags.get(T.TAG_SLURM_JOB) is None


# -- signals inside a task --------------------------------------------------------------
@pytest.fixture
def handlers_kept():
    """The signal handlers and sys.unraisablehook as they were, after the test."""
    sigs = (signal.SIGUSR2, signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGALRM)
    before = {s: signal.getsignal(s) for s in sigs}
    hook = sys.unraisablehook
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    for sig, handler in before.items():
        signal.signal(sig, handler)
    sys.unraisablehook = hook


def test_usr2_interrupts_once_and_submitit_s_handler_runs_after_the_clean_up(handlers_kept):
    called = []
    signal.signal(signal.SIGUSR2, lambda signum, frame: called.append(signum))  # submitit's
    signals = TaskSignals()
    with pytest.raises(Interrupted, match="SIGUSR2: preempted or near its time limit"):
        os.kill(os.getpid(), signal.SIGUSR2)
    os.kill(os.getpid(), signal.SIGTERM)  # during the clean-up: noted, ignored
    assert called == []
    signals.requeue_if_asked()
    assert called == [signal.SIGUSR2]
    assert signals.fired == [signal.SIGUSR2, signal.SIGTERM]


def test_sigterm_in_a_task_interrupts_and_asks_no_requeue(handlers_kept):
    called = []
    signal.signal(signal.SIGUSR2, lambda signum, frame: called.append(signum))
    signals = TaskSignals()
    with pytest.raises(Interrupted, match="SIGTERM"):
        os.kill(os.getpid(), signal.SIGTERM)
    signals.requeue_if_asked()
    assert called == [] and not signals.requeued


def test_an_interrupt_raised_where_python_drops_it_is_raised_again(handlers_kept):
    """The handler runs inside a weakref callback (as the garbage collector calls them,
    anywhere): Python prints the exception and drops it. It comes again, and propagates."""
    dropped = []
    sys.unraisablehook = lambda u: dropped.append(u.exc_value)  # instead of printing it
    TaskSignals()

    class Thing:
        pass

    thing = Thing()
    gone = weakref.ref(thing, lambda ref: os.kill(os.getpid(), signal.SIGTERM))
    started = time.monotonic()
    with pytest.raises(Interrupted, match="SIGTERM"):
        del thing  # the callback runs, the handler raises in it: dropped
        time.sleep(5)  # ... and raised again here
    assert gone() is None and time.monotonic() - started < 4
    assert len(dropped) == 1 and isinstance(dropped[0], Interrupted)
