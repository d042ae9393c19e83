"""The Slurm launcher where no cluster is needed: the refusal without sbatch, the requeue
wrapper, the jobs folder, the progress summary. On a real cluster: tests/e2e/test_slurm.py."""

from __future__ import annotations

import subprocess
import sys

import pytest

from orchestrator.errors import UserError
from orchestrator.execution import slurm
from orchestrator.execution.slurm_options import SlurmOptions


def test_without_sbatch_on_the_path_slurm_is_refused_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH where no Slurm command is
    with pytest.raises(UserError) as e:
        slurm.check_available()
    assert str(e.value).startswith("--launcher slurm: no `sbatch` on the PATH")
    # submit refuses before it writes anything
    with pytest.raises(UserError, match="no `sbatch` on the PATH"):
        slurm.submit(print, [("x",)], SlurmOptions(), tmp_path / "jobs")
    assert not (tmp_path / "jobs").exists()


def test_rerun_calls_again_with_the_same_arguments():
    rerun = slurm.Rerun.of(divmod, 7, 2)
    assert rerun() == (3, 1)
    again = rerun.checkpoint()  # what submitit runs when the task is requeued
    assert again.function is rerun and again.args == ()
    assert again.result() == (3, 1)


def test_a_task_unpickles_without_importing_what_it_runs(tmp_path):
    """submitit installs its USR2 handler (checkpoint, requeue) only after unpickling the
    task: unpickling must not import torch, or a preemption in those seconds kills it."""
    import cloudpickle

    from orchestrator.sweeps.search.workers import worker_main

    blob = tmp_path / "task.pkl"
    blob.write_bytes(cloudpickle.dumps(slurm.Rerun.of(worker_main, "spec")))
    code = (
        "import pickle, sys; pickle.loads(open(sys.argv[1], 'rb').read()); "
        "print(sorted(m for m in ('torch', 'mlflow', 'optuna', 'orchestrator.sweeps') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(blob)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_jobs_folder_is_beside_the_store(tmp_path):
    assert slurm.jobs_folder(tmp_path) == tmp_path / "sweep-slurm"


def test_summary_counts_the_states():
    states = {"5_0": "RUNNING", "5_1": "PENDING", "5_2": "PENDING"}
    assert slurm.summary(states) == "3 tasks: 2 PENDING, 1 RUNNING"
    assert slurm.summary({"6": "COMPLETED"}) == "1 task: 1 COMPLETED"
