"""The recorded baseline as later sweeps read it: its config, and the precision it trained in."""

from __future__ import annotations

from orchestrator import tracking as T
from orchestrator.config import recorded_config
from orchestrator.sweeps.baseline import precision_note


def test_a_baseline_trained_in_another_precision_is_warned_about(tracker, baseline_run):
    from model.train import cpu_has_native_bf16

    base = recorded_config(baseline_run)
    here = "bfloat16" if cpu_has_native_bf16() else "fp32"  # what amp=auto means here
    assert base.train.amp == "auto" and baseline_run.tags[T.TAG_AMP] == here
    assert precision_note(tracker, baseline_run, base) is None
    # as if it had been recorded on a CPU of the other kind
    other = "fp32" if here == "bfloat16" else "bfloat16"
    tracker.set_tags(baseline_run.run_id, {T.TAG_AMP: other})
    note = precision_note(tracker, tracker.get_run(baseline_run.run_id), base)
    assert note is not None and note.startswith(f"the baseline trained in {other} (amp=auto")
    assert f"here amp=auto means {here}" in note
    # a pinned precision means the same everywhere: nothing to say
    pinned = base.replace(amp="off")
    tracker.set_tags(baseline_run.run_id, {T.TAG_AMP: "fp32"})
    assert precision_note(tracker, tracker.get_run(baseline_run.run_id), pinned) is None
