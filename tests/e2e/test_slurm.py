"""The Slurm launcher (orchestrator/execution/slurm.py) on a real Slurm cluster: job arrays,
their results, cancel, Ctrl-C, and requeue through submitit's checkpointing after a time
limit and after a preemption. The cluster is .ci/start-slurm's single node (fixture
slurm_cluster); tasks are tests/slurm_tasks.py, pickled by value."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cloudpickle
import pytest
import services
import slurm_tasks

from orchestrator.execution import slurm
from orchestrator.execution.slurm_options import SlurmOptions
from tests.fixtures_slurm import sacct

pytestmark = pytest.mark.slow

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent


@pytest.fixture(scope="module", autouse=True)
def _tasks_by_value():
    """tests/ is not importable on the node: ship slurm_tasks' code in the pickles."""
    cloudpickle.register_pickle_by_value(slurm_tasks)
    yield
    cloudpickle.unregister_pickle_by_value(slurm_tasks)


def wait_for(check: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"{what} not seen in {timeout:.0f} s")


def queued(job_id: str) -> list[str]:
    out = subprocess.run(["squeue", "-h", "-r", "-o", "%i", "-j", job_id], capture_output=True)
    return out.stdout.decode().split()


def test_an_array_runs_each_call_as_one_task_and_returns_its_result(slurm_cluster, tmp_path):
    slurm.check_available()  # sbatch, sacct and scancel are on this PATH
    folder = tmp_path / "sweep-slurm"
    seen: list[dict[str, str]] = []
    array = slurm.submit(
        slurm_tasks.square, [(2,), (3,), (-1,)], SlurmOptions(time=5), folder, name="t-array"
    )
    assert array.ids == [f"{array.array_id}_{i}" for i in range(3)]

    results = slurm.wait(array, seen.append, poll_s=1)

    assert [r.job_id for r in results] == array.ids
    assert [r.state for r in results] == ["COMPLETED", "COMPLETED", "FAILED"]
    # each call ran as its own task of the one array, in call order
    assert results[0].value == (4, array.array_id, "0")
    assert results[1].value == (9, array.array_id, "1")
    assert not results[2].ok and "negative input -1" in results[2].error
    assert results[0].ok and results[0].error is None
    assert seen[-1] == dict(zip(array.ids, ["COMPLETED", "COMPLETED", "FAILED"], strict=True))
    # one sbatch: Slurm's accounting knows one array job with three tasks
    states = [r.state for r in results]
    assert sorted(sacct(array.array_id)) == sorted(zip(array.ids, states, strict=True))
    # what sweep asked of sbatch, in the batch script submitit wrote
    script = (folder / array.array_id / f"{array.array_id}_submission.sh").read_text()
    for line in ("--requeue", "--time=5", "--signal=USR2@90", "--job-name=t-array"):
        assert f"#SBATCH {line}" in script, line
    assert "#SBATCH --array=0-2" in script
    assert all(r.log.parent.parent == folder.resolve() and r.out.is_file() for r in results)


def test_cancel_ends_the_running_and_the_pending_tasks(slurm_cluster, tmp_path):
    started = [tmp_path / f"started-{i}" for i in range(3)]
    # each task takes every CPU of the node: one runs, two wait in the queue
    options = SlurmOptions(time=15, cpus=slurm_cluster.cpus)
    calls = [(600, str(path)) for path in started]
    array = slurm.submit(slurm_tasks.sleep, calls, options, tmp_path / "jobs", name="t-cancel")
    wait_for(lambda: any(p.exists() for p in started), 120, "a task running")
    wait_for(lambda: "PENDING" in slurm.states(array).values(), 60, "a task pending")

    slurm.cancel(array)

    wait_for(lambda: not slurm.ACTIVE & set(slurm.states(array).values()), 60, "the end")
    assert set(slurm.states(array).values()) == {"CANCELLED"}
    assert sum(p.exists() for p in started) == 1  # the pending ones never started
    wait_for(lambda: not queued(array.array_id), 120, "the tasks leaving the queue")
    results = slurm.wait(array, poll_s=1)
    assert [(r.state, r.ok) for r in results] == [("CANCELLED", False)] * 3


CTRL_C_CHILD = """
import sys
from pathlib import Path
import cloudpickle, slurm_tasks
from orchestrator.execution import slurm
cloudpickle.register_pickle_by_value(slurm_tasks)
calls = [(600, sys.argv[2]), (600, None)]
array = slurm.submit(slurm_tasks.sleep, calls, slurm.SlurmOptions(time=15), Path(sys.argv[1]))
print(array.array_id, flush=True)
slurm.wait(array, poll_s=1)
"""


def test_ctrl_c_on_the_submitting_process_cancels_its_jobs(slurm_cluster, tmp_path):
    started = tmp_path / "started"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(ROOT)])}
    child = subprocess.Popen(
        [sys.executable, "-c", CTRL_C_CHILD, str(tmp_path / "jobs"), str(started)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        array_id = child.stdout.readline().strip()
        assert array_id.isdigit(), child.stderr.read()
        wait_for(started.exists, 120, "the first task running")
        child.send_signal(signal.SIGINT)
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode != 0
    assert "KeyboardInterrupt" in child.stderr.read()

    def all_cancelled() -> bool:
        rows = sacct(array_id)
        return len(rows) == 2 and {state for _, state in rows} == {"CANCELLED"}

    wait_for(all_cancelled, 60, "both tasks CANCELLED")
    wait_for(lambda: not queued(array_id), 120, "the tasks leaving the queue")


def test_a_task_at_its_time_limit_is_requeued_and_runs_its_call_again(slurm_cluster, tmp_path):
    marker = tmp_path / "first-run"
    # a minute's limit, submitit's signal 10 s before it (Slurm sends it up to ~30 s early)
    options = SlurmOptions(time=1, signal_delay_s=10)
    since = time.time()
    array = slurm.submit(slurm_tasks.slow_once, [(str(marker),)], options, tmp_path / "jobs")

    [result] = slurm.wait(array, poll_s=1)

    assert result.ok, result.error
    assert result.value == ("rerun", "1")  # the same call, in Slurm's second run of the task
    assert marker.exists()
    assert [state for _, state in sacct(array.array_id, since)] == [
        "REQUEUED",
        "COMPLETED",
    ]
    out = result.out.read_text()  # submitit's account of the first run
    assert "this job is timed-out" in out and "Calling checkpoint method" in out
    assert "Requeued job" in out


def test_a_preempted_task_is_requeued_and_resumes_from_its_checkpoint(slurm_cluster, tmp_path):
    if "urgent" not in slurm_cluster.partitions:
        reason = "needs the 'urgent' partition of .ci/slurm.conf.in (preempts the default)"
        if services.in_ci():
            pytest.fail(reason)
        pytest.skip(reason)
    started = tmp_path / "started"
    # 20 min: submitit tells a preemption from a time-out by the time left (over 10 min)
    low = SlurmOptions(time=20, cpus=slurm_cluster.cpus, partition=slurm_cluster.default_partition)
    resumable = slurm_tasks.Resumable(str(started))
    since = time.time()
    array = slurm.submit(resumable, [()], low, tmp_path / "jobs", name="t-low")
    wait_for(started.exists, 120, "the low-priority task running")

    urgent = slurm.submit(
        slurm_tasks.square, [(7,)], SlurmOptions(time=2, partition="urgent"), tmp_path / "jobs"
    )
    [first] = slurm.wait(urgent, poll_s=1)
    [result] = slurm.wait(array, poll_s=1)

    assert first.ok and first.value[0] == 49
    # the requeued task ran the callable as its checkpoint() left it: second run, state kept
    assert result.ok, result.error
    assert result.value == {"runs": 2, "checkpointed": True, "restarts": "1"}
    runs = [state for _, state in sacct(array.array_id, since)]
    assert runs[-1] == "COMPLETED" and runs[0] in ("REQUEUED", "PREEMPTED"), runs
    out = result.out.read_text()
    assert "this job is preempted" in out and "Calling checkpoint method" in out
