"""What the Slurm launcher costs around the work: a job array of a trivial function, from
`submit` to the results in hand (orchestrator/execution/slurm.py on a real Slurm).

Each repeat submits a 2-task array of `abs` and waits for it; the columns split the time
into sbatch (submit returns) and the wait (scheduling, job start, Python start on the node,
sacct seeing the end, reading the result pickles), at two polling intervals: the wait's
floor is set by how often sacct is asked. Needs a cluster (`bash .ci/start-slurm`).

    .venv/bin/python benchmarks/slurm_launch.py [--repeats 5] [--tasks 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def one(tasks: int, poll_s: float, folder: Path) -> tuple[float, float]:
    from orchestrator.execution import slurm
    from orchestrator.execution.slurm_options import SlurmOptions

    t0 = time.perf_counter()
    array = slurm.submit(abs, [(-i,) for i in range(tasks)], SlurmOptions(time=5), folder)
    t1 = time.perf_counter()
    results = slurm.wait(array, poll_s=poll_s)
    t2 = time.perf_counter()
    assert [r.value for r in results] == list(range(tasks)), results
    return t1 - t0, t2 - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=2)
    args = parser.parse_args()
    from orchestrator.execution import slurm

    slurm.check_available()
    print(f"{args.tasks}-task array of a trivial function, {args.repeats} repeats (medians)\n")
    print(f"{'poll_s':>7} {'submit s':>9} {'end to end s':>13} {'min':>6} {'max':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        for poll_s in (0.5, 5.0):
            runs = [one(args.tasks, poll_s, Path(tmp) / "jobs") for _ in range(args.repeats)]
            submit_s = statistics.median(r[0] for r in runs)
            total = [r[1] for r in runs]
            print(
                f"{poll_s:>7} {submit_s:>9.2f} {statistics.median(total):>13.2f} "
                f"{min(total):>6.2f} {max(total):>6.2f}"
            )


if __name__ == "__main__":
    main()
