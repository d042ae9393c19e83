"""Torch threads: more than the usable CPUs refused; auto chosen from the CPUs and the load
when a run starts (recorded, outside the config hash)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from model.errors import ConfigError
from model.train import busy_cpus, resolve_threads, usable_cpus


def test_more_threads_than_cpus_are_refused():
    with pytest.raises(ConfigError, match=r"threads 100000 is more than the \d+ CPU\(s\)"):
        resolve_threads(100000)
    assert resolve_threads(1) == 1


def test_threads_above_the_cpus_are_a_usage_error_before_anything_trains(store):
    from clitools import one_error_line, sweep

    r = sweep("baseline", "--profile", "smoke", "--threads", "100000", "--tracking-uri", store)
    assert r.exit_code == 2
    assert "Invalid value for '--threads': 100000 is more than the" in one_error_line(r)
    r = sweep("baseline", "--profile", "smoke", "--set", "threads=100000", "--tracking-uri", store)
    assert r.exit_code == 2
    assert "threads: threads 100000 is more than the" in one_error_line(r)


def test_a_gpu_profile_on_a_cpu_names_the_fix(store):
    import torch
    from clitools import one_error_line, sweep

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    r = sweep("baseline", "--profile", "mid-gpu", "--tracking-uri", store)
    assert r.exit_code == 2
    line = one_error_line(r)
    assert "device cuda is not available here" in line
    assert "--set device=cpu" in line and "--set device=auto" in line


@pytest.mark.parametrize("seeds", ["100000000", "0"])
def test_seeds_beyond_the_bound_are_refused_before_anything_trains(store, seeds):
    from clitools import one_error_line, sweep

    r = sweep("baseline", "--profile", "smoke", "--seeds", seeds, "--tracking-uri", store)
    assert r.exit_code == 2
    assert "Invalid value for '--seeds'" in one_error_line(r)


def test_auto_threads_leave_the_cpus_a_busy_neighbour_holds():
    """A real neighbour: `cpus` processes spinning on this process's CPUs. Auto then takes
    one thread (the load leaves no core free), where an idle machine gives more."""
    cpus = usable_cpus()
    spin = "import time\nt=time.time()+120\nwhile time.time()<t: pass\n"
    procs = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(cpus)]
    try:
        import time

        # the 1-minute load average climbs towards `cpus` with a one-minute time constant:
        # from an idle machine it needs about 80 s to pass cpus - 0.5
        deadline = time.monotonic() + 100
        while busy_cpus() < cpus - 0.5 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert busy_cpus() >= cpus - 0.5, busy_cpus()
        assert resolve_threads(0) == 1
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_a_run_records_the_threads_it_chose(store, smoke_cfg):
    from envs import env_of

    from orchestrator import tracking as T
    from orchestrator.sweeps.baseline import record_baseline

    tracker = T.Tracker(store, "char-gpt")
    cfg = smoke_cfg.replace(max_steps=4, eval_every=4)
    assert cfg.train.threads == 0  # auto
    result = record_baseline(env_of(tracker), cfg)
    run = tracker.get_run(result.run_id)
    chosen = int(run.tags[T.TAG_THREADS])
    assert 1 <= chosen <= usable_cpus()
    assert run.params["threads"] == "0"  # the config says auto; the tag says what ran
    assert cfg.config_hash() == cfg.replace(threads=chosen).config_hash()  # not its identity
