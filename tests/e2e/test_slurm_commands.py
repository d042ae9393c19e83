"""`sweep search/ablate --launcher slurm` on a real Slurm cluster (.ci/start-slurm's single
node), against an MLflow tracking server backed by PostgreSQL and an Optuna study in
PostgreSQL: the commands as a user runs them (in this process, as the CLI tests do, but for
Ctrl-C, which needs a process of its own). The refusals made before anything is submitted
are here too (tests/orchestrator/execution/test_slurm_runs.py has the one that needs no
server).

One MLflow server serves the module (it takes a while to start on a small machine); each test
has its own experiment, baseline and Optuna database. The jobs inherit this process's
environment (sbatch --export=ALL): SWEEP_HEARTBEAT_S=1 reaches them."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import services
from clitools import sweep
from envs import TINY, env_of, short_corpus
from optuna.trial import TrialState

from orchestrator import tracking as T
from orchestrator.config import build
from orchestrator.sweeps.baseline import record_baseline
from orchestrator.sweeps.search.attrs import ATTR_SURPLUS
from orchestrator.sweeps.search.budget import counted, retried_number
from orchestrator.tracking import RunState, Tracker
from tests.fixtures_slurm import sacct

pytestmark = pytest.mark.slow

SPACE = "[dropout]\nlow = 0.0\nhigh = 0.3\n[lr]\nlow = 3e-4\nhigh = 3e-3\nlog = true\n"
# trials long enough (100 steps, a few seconds here) to be caught mid-trial
LONG_SPACE = "[max_steps]\nvalues = [100]\n[dropout]\nlow = 0.0\nhigh = 0.3\n"
# How a stopped trial's run ends: by its worker; or, when the signal came as the run was
# being ended (its artifacts uploading), by the retry, which ends what is still RUNNING; or,
# when KillWait's SIGKILL came first, by the command that waits for the jobs
STOPPED = (
    "terminated (SIGTERM)",
    "died mid-trial; Optuna marked trial",
    "ended mid-trial; Optuna marked trial",
)


@pytest.fixture(scope="module")
def server(pg_admin_url, tmp_path_factory) -> Iterator[str]:
    """An `mlflow server` backed by a fresh PostgreSQL database, for the whole module."""
    name = services.unique_db_name("sweep_slurm_mlflow")
    db = services.create_database(pg_admin_url, name)
    workdir = tmp_path_factory.mktemp("mlflow")
    proc, url = services.start_mlflow_server_retrying(db, workdir, timeout=180)
    try:
        yield url
    finally:
        services.stop_process(proc)
        services.drop_database(pg_admin_url, name)


@pytest.fixture
def optuna_db(pg_admin_url) -> Iterator[str]:
    name = services.unique_db_name("sweep_slurm_optuna")
    url = services.create_database(pg_admin_url, name)
    try:
        yield url
    finally:
        services.drop_database(pg_admin_url, name)


@pytest.fixture
def experiment(request) -> str:
    return f"slurm-{request.node.name[:60]}-{os.getpid()}"


@pytest.fixture
def recorded(request, server, experiment, tmp_path, corpus_path, monkeypatch) -> Tracker:
    """A tiny baseline in this test's experiment (seeds: the test's parameter, else 1);
    space files in tmp_path, the working directory (sweep-slurm/ lands there)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SWEEP_HEARTBEAT_S", "1")
    corpus = short_corpus(corpus_path, tmp_path)
    tracker = Tracker(server, experiment)
    cfg = build("smoke", dict(TINY), data=str(corpus))
    assert record_baseline(env_of(tracker), cfg, getattr(request, "param", 1)).ok
    (tmp_path / "space.toml").write_text(SPACE, encoding="utf-8")
    (tmp_path / "long.toml").write_text(LONG_SPACE, encoding="utf-8")
    return tracker


def start(tmp_path: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    """`sweep ARGS` as a user runs it, in tmp_path (sweep-slurm/ lands there)."""
    env = {**os.environ, "SWEEP_HEARTBEAT_S": "1", "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


@contextlib.contextmanager
def started(tmp_path: Path, *args: str) -> Iterator[subprocess.Popen]:
    """`start`; the command's process group killed if the test leaves it running."""
    proc = start(tmp_path, *args)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def run(*args: str) -> tuple[int, str]:
    """`sweep ARGS` in this process (stdout and stderr together)."""
    result = sweep(*args)
    return result.exit_code, result.output


def search_args(tracker: Tracker, storage: str, space: str = "space.toml", trials: int = 6):
    return [
        "search",
        "--launcher",
        "slurm",
        "--workers",
        "2",
        "--trials",
        str(trials),
        "--space",
        space,
        "--study",
        "on-slurm",
        "--storage",
        storage,
        "--tracking-uri",
        tracker.uri,
        "--experiment",
        tracker.experiment_name,
        "--pruner",
        "none",
        "--seed",
        "3",
        "--slurm-time",
        "10",
    ]


def array_of(out: str) -> str:
    line = next(ln for ln in out.splitlines() if ln.startswith("submitted job array "))
    return line.split()[3]


def queued(array: str) -> list[str]:
    out = subprocess.run(["squeue", "-h", "-r", "-o", "%i", "-j", array], capture_output=True)
    return out.stdout.decode().split()


def wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.3)
    raise AssertionError(f"{what} not seen in {timeout:.0f} s")


def trained(study) -> list:
    """The study's trials but a surplus one (it lost a race for the last slot, untrained)."""
    return [t for t in study.get_trials() if not t.user_attrs.get(ATTR_SURPLUS)]


def the_search(tracker: Tracker) -> T.RunInfo:
    (parent,) = tracker.search(f"tags.`{T.TAG_ROLE}` = 'search'")
    return parent


def training_trial(tracker: Tracker) -> T.RunInfo | None:
    """A trial run training in a Slurm job that has logged an eval (not one being linked
    to the run that has its config: a link run copies the metrics)."""
    for run in T.running(tracker):
        if (
            run.tags.get(T.TAG_ROLE) == T.Role.SEARCH_TRIAL
            and T.TAG_SLURM_JOB in run.tags
            and T.TAG_REUSED_FROM not in run.tags
            and "val_loss" in run.metrics
        ):
            return run
    return None


def test_search_workers_are_one_job_array_and_a_cancelled_one_costs_the_study_no_trial(
    slurm_cluster, recorded, optuna_db, tmp_path
):
    """`sweep search --launcher slurm --workers 2 --trials 6`, one worker scancelled mid-trial:
    exactly 6 trials all the same, the stopped one retried once, its run KILLED."""
    stopped: list[T.RunInfo] = []

    def scancel_one_mid_trial() -> None:
        victim = wait_for(lambda: training_trial(recorded), 180, "a trial training in a job")
        subprocess.run(["scancel", victim.tags[T.TAG_SLURM_JOB]], check=True)
        stopped.append(victim)

    canceller = threading.Thread(target=scancel_one_mid_trial, daemon=True)
    canceller.start()
    code, out = run(*search_args(recorded, optuna_db, "long.toml"))
    canceller.join(5)

    assert code == 0, out
    (victim,) = stopped
    job, number = victim.tags[T.TAG_SLURM_JOB], int(victim.tags[T.TAG_TRIAL])
    array = array_of(out)
    assert f"submitted job array {array} (2 tasks: {array}_0, {array}_1)" in out
    assert job in (f"{array}_0", f"{array}_1")
    # per-worker progress while it waited, the cancelled worker, the table and the report
    assert f"6 of 6 trials finished | {array}_0 " in out, out
    assert f"warning: worker {job} ended CANCELLED" in out, out
    assert "study 'on-slurm' (postgresql" in out and ": 6 complete, 0 pruned, 0 failed" in out

    study = optuna.load_study(study_name="on-slurm", storage=optuna_db)
    trials = counted(study.get_trials())
    assert len(trials) == 6 and all(t.state == TrialState.COMPLETE for t in trials)
    assert len(trained(study)) == 7  # the six, and the one the cancel cost
    everything = study.get_trials()
    assert everything[number].state == TrialState.FAIL
    retries = [t for t in everything if retried_number(t) == number]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == everything[number].params

    parent = the_search(recorded)
    assert parent.state is RunState.COMPLETE
    children = recorded.children(parent.run_id)
    killed = recorded.get_run(victim.run_id)
    assert killed.state is RunState.KILLED
    assert any(r in killed.tags[T.TAG_REASON] for r in STOPPED), killed.tags[T.TAG_REASON]
    (retry_run,) = [r for r in children if r.tags.get(T.TAG_RETRY_OF) == str(number)]
    assert retry_run.state is RunState.COMPLETE and retry_run.tags[T.TAG_SLURM_JOB] != job
    others = [r for r in children if r.run_id != victim.run_id]
    assert sorted(int(r.tags[T.TAG_TRIAL]) for r in others) == sorted(t.number for t in trials)
    # trial 0 is the baseline's own point (linked); the others trained in the array's tasks
    assert [r.state for r in others if T.TAG_REUSED_FROM in r.tags] == [RunState.REUSED]
    assert all(r.state is RunState.COMPLETE for r in others if T.TAG_REUSED_FROM not in r.tags)
    assert {r.tags.get(T.TAG_SLURM_JOB) for r in others} <= {f"{array}_0", f"{array}_1"}
    assert not T.running(recorded)
    # submitit's files beside the store (the server's: the working directory), owner-only
    assert (tmp_path / "sweep-slurm").stat().st_mode & 0o777 == 0o700
    assert sorted(p.name for p in (tmp_path / "sweep-slurm").glob(f"{array}_*")) == [
        f"{array}_0",
        f"{array}_1",
    ]


def test_ctrl_c_cancels_the_worker_jobs_and_their_trials_end_killed(
    slurm_cluster, recorded, optuna_db, tmp_path
):
    with started(tmp_path, *search_args(recorded, optuna_db, "long.toml", trials=20)) as proc:
        victim = wait_for(lambda: training_trial(recorded), 180, "a trial training in a job")
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the command's process group
        out, _ = proc.communicate(timeout=180)

    assert proc.returncode == 130, out
    assert "Traceback" not in out
    array = array_of(out)
    assert not queued(array)  # cancelled, and ended before the command returned
    killed = recorded.get_run(victim.run_id)
    assert killed.state is RunState.KILLED
    assert any(r in killed.tags[T.TAG_REASON] for r in STOPPED), killed.tags[T.TAG_REASON]
    assert not T.running(recorded)
    assert the_search(recorded).state is RunState.KILLED
    study = optuna.load_study(study_name="on-slurm", storage=optuna_db)
    assert not study.get_trials(states=(TrialState.RUNNING,))
    assert study.get_trials()[int(victim.tags[T.TAG_TRIAL])].state == TrialState.FAIL


def running_worker() -> str | None:
    out = subprocess.run(
        ["squeue", "-h", "-t", "R", "-n", "sweep-worker", "-o", "%i"], capture_output=True
    )
    return out.stdout.decode().split()[0] if out.stdout.strip() else None


def test_a_worker_preempted_as_it_starts_is_requeued_and_the_search_completes(
    slurm_cluster, recorded, optuna_db, tmp_path
):
    """A preemption (submitit's USR2) that lands while the worker is still starting, before
    its study is open: the job is requeued and the search finishes its trials. (Before, the
    job ended FAILED, and the search closed `complete` with 0 trials and exit 0.)"""
    if "urgent" not in slurm_cluster.partitions:
        pytest.skip("needs the 'urgent' partition of .ci/slurm.conf.in (preempts the default)")
    cpus = str(slurm_cluster.cpus)  # the whole node: the urgent job preempts the worker
    args = [*search_args(recorded, optuna_db, trials=3), "--workers", "1", "--slurm-cpus", cpus]
    since = time.time()
    with started(tmp_path, *args) as proc:
        job = wait_for(running_worker, 180, "the worker job running")
        urgent = ["sbatch", "-p", "urgent", "-c", "1", "-t", "2", "-o", "/dev/null"]
        subprocess.run([*urgent, "--wrap", "sleep 2"], check=True, capture_output=True)
        out, _ = proc.communicate(timeout=400)

    assert proc.returncode == 0, out
    study = optuna.load_study(study_name="on-slurm", storage=optuna_db)
    assert sum(t.state == TrialState.COMPLETE for t in counted(study.get_trials())) == 3, out
    assert the_search(recorded).state is RunState.COMPLETE
    assert not T.running(recorded)
    states = [state for _, state in sacct(job, since)]
    assert states[0] in ("REQUEUED", "PREEMPTED") and states[-1] == "COMPLETED", (states, out)


@pytest.mark.parametrize("recorded", [3], indirect=True)  # confirm: 2 seeds the search never ran
def test_detach_returns_at_once_then_table_shows_the_finished_study_and_confirm_runs_on_slurm(
    slurm_cluster, recorded, optuna_db, tmp_path
):
    code, out = run(*search_args(recorded, optuna_db), "--detach")

    assert code == 0, out
    array = array_of(out)
    assert queued(array), "returned while its jobs are still in the queue"
    assert f"stop them: `scancel {array}`" in out
    parent = the_search(recorded)
    assert parent.state is RunState.RUNNING
    wait_for(lambda: not queued(array), 300, "the worker jobs ending")

    where = ["--tracking-uri", recorded.uri, "--experiment", recorded.experiment_name]
    code, table = run("table", "--sweep", parent.run_id, "--format", "csv", *where)
    assert code == 0, table
    rows = [row[1] for row in list(csv.reader(io.StringIO(table.strip())))[1:]]
    assert rows[0] == "baseline" and len(rows) == 7, rows
    assert sorted(r.split(":")[0] for r in rows[1:]) == [f"trial-{i}" for i in range(6)]
    # the last worker closed the parent run, with its table
    assert recorded.get_run(parent.run_id).state is RunState.COMPLETE
    assert "table.csv" in recorded.list_artifacts(parent.run_id)
    code, listing = run("list", *where)
    (line,) = [ln for ln in listing.splitlines() if parent.run_id in ln]
    assert code == 0 and "search:on-slurm" in line and " complete " in line, listing

    # its best trial confirmed on the two baseline seeds it never ran, each run a task
    # (--max-seeds 2: no seed added one at a time after them, each such look another array)
    args = ["confirm", "--sweep", parent.run_id, "--top", "1", "--seeds", "2", "--max-seeds", "2"]
    code, out = run(*args, "--launcher", "slurm", *where)
    assert code == 0, out
    array = array_of(out)
    assert f"submitted job array {array} (2 tasks: {array}_0, {array}_1)" in out
    (confirm,) = recorded.search(f"tags.`{T.TAG_SEARCH_RUN}` = '{parent.run_id}'")
    runs = recorded.children(confirm.run_id)
    assert sorted(r.tags[T.TAG_SLURM_JOB] for r in runs) == [f"{array}_0", f"{array}_1"]
    assert all(r.state is RunState.COMPLETE for r in runs)
    assert f"confirm run {confirm.run_id}" in out


def test_an_ablation_trains_each_run_as_an_array_task_and_resumes_as_locally(
    slurm_cluster, recorded, tmp_path
):
    args = ["ablate", "--knob", "dropout", "--values", "0.1,0.2", "--launcher", "slurm"]
    args += ["--tracking-uri", recorded.uri, "--experiment", recorded.experiment_name]
    code, out = run(*args)

    assert code == 0, out
    array = array_of(out)
    assert f"submitted job array {array} (2 tasks: {array}_0, {array}_1)" in out
    (parent,) = recorded.search(f"tags.`{T.TAG_ROLE}` = 'ablation'")
    runs = {r.name: r for r in recorded.children(parent.run_id)}
    assert sorted(runs) == ["dropout=0.1", "dropout=0.2"]
    assert [runs[n].tags[T.TAG_SLURM_JOB] for n in sorted(runs)] == [f"{array}_0", f"{array}_1"]
    assert all(r.state is RunState.COMPLETE and "best_val_loss" in r.metrics for r in runs.values())
    for name, run_ in runs.items():  # each task's end line, with its run's numbers
        assert f"{name} ({run_.tags[T.TAG_SLURM_JOB]}): best val_loss " in out
    assert recorded.get_run(parent.run_id).state is RunState.COMPLETE

    code, again = run(*args)  # resume: nothing left to train, nothing submitted
    assert code == 0, again
    assert "submitted job array" not in again
    assert again.count("already finished with the same config, not trained again") == 2
    assert len(recorded.children(parent.run_id)) == 2


def test_the_journal_storage_is_refused_before_anything_is_submitted(
    slurm_cluster, recorded, tmp_path
):
    args = search_args(recorded, "placeholder")
    i = args.index("--storage")
    code, out = run(*args[:i], *args[i + 2 :])  # no --storage: the journal file

    assert code == 2, out
    assert out.strip().splitlines() == [
        "error: --launcher slurm: the Optuna journal file cannot be shared safely by workers "
        "on other machines; pass --storage postgresql://USER:PASSWORD@HOST/DB (a database the "
        "nodes reach)"
    ]
    assert not recorded.search(f"tags.`{T.TAG_ROLE}` = 'search'")
    assert not (tmp_path / "sweep-slurm").exists()


def test_no_sbatch_is_refused_before_anything_is_recorded(recorded, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))  # python, not Slurm
    args = ["ablate", "--knob", "dropout", "--values", "0.1", "--launcher", "slurm"]
    args += ["--tracking-uri", recorded.uri, "--experiment", recorded.experiment_name]
    code, out = run(*args)

    assert code == 2, out
    assert out.strip().splitlines() == [
        "error: --launcher slurm: no `sbatch` on the PATH (run sweep on a Slurm login node, "
        "or use the local launcher)"
    ]
    assert not recorded.search(f"tags.`{T.TAG_ROLE}` = 'ablation'")
