"""pytest fixtures for a real Slurm cluster (the single node .ci/start-slurm starts).

The tests submit real jobs, so they run only where SWEEP_TEST_SLURM=1 says that the Slurm
on the PATH is a test cluster (.ci/run exports it): elsewhere they skip, and under CI
(CI set) a missing or silent cluster fails them, like the PostgreSQL fixtures.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

import services

SLURM_ENV = "SWEEP_TEST_SLURM"


@dataclass(frozen=True)
class SlurmCluster:
    """What the tests need to know of the cluster: its partitions (the default first) and
    the CPUs of its node."""

    partitions: tuple[str, ...]
    cpus: int

    @property
    def default_partition(self) -> str:
        return self.partitions[0]


def _missing(reason: str) -> None:
    if services.in_ci():
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def _sinfo() -> subprocess.CompletedProcess:
    return subprocess.run(
        ["sinfo", "-h", "-o", "%P %c %T"], capture_output=True, text=True, timeout=30
    )


@pytest.fixture(scope="session")
def slurm_cluster() -> SlurmCluster:
    """The test cluster, once `sinfo` answers with a usable node."""
    if os.environ.get(SLURM_ENV, "").strip() not in ("1", "true", "yes"):
        _missing(f"{SLURM_ENV} not set: .ci/start-slurm starts a single-node Slurm (as root)")
    if shutil.which("sbatch") is None:
        _missing(f"{SLURM_ENV} is set but there is no sbatch on the PATH")
    out = _sinfo()
    if out.returncode != 0:
        _missing(f"sinfo failed: {out.stderr.strip()} (is slurmctld running?)")
    rows = [line.split() for line in out.stdout.splitlines() if line.strip()]
    usable = [r for r in rows if r[2].rstrip("*~#") in ("idle", "mixed", "allocated")]
    if not usable:
        _missing(f"no usable Slurm node: sinfo says {out.stdout.strip()!r}")
    # the default partition is marked with a '*' and listed first here (once each)
    names = sorted(dict.fromkeys(r[0] for r in rows), key=lambda p: not p.endswith("*"))
    return SlurmCluster(
        partitions=tuple(p.rstrip("*") for p in names),
        cpus=min(int(r[1].rstrip("+")) for r in usable),  # "2+": nodes of 2 CPUs or more
    )


def sacct(job_id: str, since: float | None = None) -> list[tuple[str, str]]:
    """(JobID, first word of State) of the job's allocations; with `since` (a time.time()),
    every run of the job since then (-D), oldest first (a cluster whose state was wiped
    could hand out the same id again)."""
    cmd = ["sacct", "-X", "-n", "-P", "-o", "JobID,State", "-j", job_id]
    if since is not None:
        cmd += ["-D", "-S", time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(since - 1))]
    out = subprocess.run(cmd, capture_output=True, text=True)
    rows = [line.split("|") for line in out.stdout.splitlines() if line.strip()]
    return [(r[0], r[1].split()[0]) for r in rows]
