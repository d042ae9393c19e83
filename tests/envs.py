"""`env_of(tracker)`: the RunEnv a command builds, for tests that call a sweep directly."""

from __future__ import annotations


def env_of(tracker, progress=None, **options):
    from orchestrator.progress import Progress
    from orchestrator.sweeps import command_env

    return command_env(tracker, progress or Progress(live=False), **options)


def ablation_of(tracker, knob: str, baseline_id: str):
    """The parent run of the ablation of `knob` against that baseline (None if none)."""
    from orchestrator import tracking as T
    from orchestrator.sweeps.sweep import Sweep

    key = {T.TAG_ROLE: T.Role.ABLATION, T.TAG_KNOB: knob, T.TAG_BASELINE: baseline_id}
    return Sweep.find(tracker, key)
