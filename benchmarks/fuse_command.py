"""A whole `sweep` command with fused groups against the same command with `--fuse off`.

Each round runs the command twice, fused (`--fuse auto`) and solo (`--fuse off`), in that
order or the other (alternating), each into a fresh SQLite store, so a loaded machine
slows both alike; wall time of the whole process (start-up, MLflow logging, evals,
samples, checkpoints, the table). Prints the median of each and their ratio.

    python benchmarks/fuse_command.py [--rounds 3] [--seeds 8] [--steps 300]
                                      [--profile smoke] [--threads 1] [--data FILE]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(args: list[str], fuse: str, threads: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "orchestrator.cli", *args, "--fuse", fuse,
               "--tracking-uri", f"sqlite:///{Path(tmp) / 'mlflow.db'}"]  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        t0 = time.perf_counter()
        done = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if done.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
        if fuse != "off" and "trained as one model" not in done.stderr:
            print(f"note: --fuse {fuse} trained no group here", file=sys.stderr)
        return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--profile", default="smoke")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data", default=None)
    a = ap.parse_args()
    args = ["baseline", "--profile", a.profile, "--set", f"max_steps={a.steps}",
            "--seeds", str(a.seeds), "--threads", str(a.threads)]  # fmt: skip
    if a.data:
        args += ["--data", a.data]
    times: dict[str, list[float]] = {"auto": [], "off": []}
    for r in range(a.rounds):
        order = ("auto", "off") if r % 2 == 0 else ("off", "auto")
        for fuse in order:
            times[fuse].append(run(args, fuse, a.threads))
            print(f"round {r + 1}: --fuse {fuse}: {times[fuse][-1]:.1f} s", file=sys.stderr)
    fused, solo = (statistics.median(times[k]) for k in ("auto", "off"))
    print(f"\n`sweep {' '.join(args)}`, {a.rounds} rounds, median wall time of the command\n")
    print("| --fuse | median s | all rounds (s) |")
    print("|---|---:|---|")
    for k in ("auto", "off"):
        print(f"| {k} | {statistics.median(times[k]):.1f} | "
              f"{', '.join(f'{t:.1f}' for t in times[k])} |")  # fmt: skip
    print(f"\nfused / solo speed-up: {solo / fused:.2f}x")


if __name__ == "__main__":
    main()
