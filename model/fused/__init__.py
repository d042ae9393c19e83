"""Horizontally fused training: K same-shape runs as one model with a leading member
dimension (batched matmuls, one optimizer step for all), each member still exactly a run.

    from model.fused import FusedTrainer, Member, StepCache, fuse_key, plan_groups

- `fuse_key(gpt, train)`: specs with equal keys (and corpus) can share a group;
- `plan_groups(n, device, gpt, train, fuse="auto"|"on"|"off", max_members=None)`: sizes;
- `FusedTrainer([Member(gpt, train, out_dir, hooks, sample), ...], dataset).run()`:
  one `MemberResult` (summary or error) per member, in order.

params.py (the flat (K, P) weights), model.py (the forward), optim.py (clipping, AdamW),
steps.py (device-side steps: eager, compiled, CUDA graphs), sample.py (samples of several
members at once), trainer.py (the loop and the per-member events), plan.py (grouping).
"""

from model.fused.plan import fuse_key, member_bytes, plan_groups, step_flops
from model.fused.steps import MODES, StepCache
from model.fused.trainer import FusedTrainer, Member, MemberResult

__all__ = [
    "MODES",
    "FusedTrainer",
    "Member",
    "MemberResult",
    "StepCache",
    "fuse_key",
    "member_bytes",
    "plan_groups",
    "step_flops",
]
