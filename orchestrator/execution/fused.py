"""Same-shape specs of one command trained as one fused model (model/fused/), each member
still exactly a run: its own MLflow child run with the name, params, config hash, tags,
metrics at every eval, samples, `checkpoints/best.pt` and `config.json` it would have had
trained alone, plus a `sweep.fused_group` tag (the group's id) and `sweep.fused_members`.

`groups` splits a command's specs into what trains together: specs with the same
`model.fused.plan.fuse_key` and corpus, in groups as large as memory, `--fuse-max` and the
`--fuse` rule allow (plan_groups); a spec with its own hooks (a search trial's pruner)
trains alone. A member that diverges fails alone (FAILED with its step); Ctrl-C, SIGTERM
and SIGHUP end every member KILLED and propagate, so resume trains them again.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from model.train import DivergenceError

from .. import tracking as T
from ..errors import Interrupted, StoreError, first_line, stop_reason
from ..tracking import RunState
from .env import WORKDIR_PREFIX, RunEnv
from .runner import HookList, RunLogger, config_json, finish, log_summary, record_start
from .spec import Outcome, RunSpec

OpenRun = Callable[[RunSpec], "RunSpec | Outcome"]


def groups(env: RunEnv, specs: Sequence[RunSpec]) -> list[list[int]]:
    """Indices of `specs` by training group, in the order the groups train (a group: the
    first spec of its key decides when): lists of one train alone."""
    from model.fused.plan import fuse_key, plan_groups

    by_key: dict[tuple, list[int]] = {}
    solo: dict[int, list[int]] = {}
    for i, spec in enumerate(specs):
        if env.fuse == "off" or spec.hooks or spec.stop_on:
            solo[i] = [i]
            continue
        ready = env.prepare(spec.cfg)
        key = (fuse_key(ready.cfg.gpt, ready.cfg.train), ready.cfg.data, ready.device)
        by_key.setdefault(key, []).append(i)
    planned: dict[int, list[list[int]]] = {}
    for (_, _, device), idx in by_key.items():
        cfg = env.prepare(specs[idx[0]].cfg).cfg
        sizes = plan_groups(len(idx), device, cfg.gpt, cfg.train, env.fuse, env.fuse_max)
        cut, start = [], 0
        for n in sizes:
            cut.append(idx[start : start + n])
            start += n
        planned[idx[0]] = cut
    out: list[list[int]] = []
    for i in range(len(specs)):
        out += [solo[i]] if i in solo else planned.get(i, [])
    return out


def train_group(env: RunEnv, specs: Sequence[RunSpec], open_run: OpenRun) -> list[Outcome]:
    """Open every spec's run (one another process has comes back as its Outcome), train the
    opened ones as one group, end each member's run. Outcomes in spec order."""
    from .runner import train

    opened = [open_run(s) for s in specs]
    todo = [(i, s) for i, s in enumerate(opened) if isinstance(s, RunSpec)]
    outcomes: list[Outcome | None] = [o if isinstance(o, Outcome) else None for o in opened]
    if len(todo) == 1:
        outcomes[todo[0][0]] = train(env, todo[0][1])
    elif todo:
        for (i, _), out in zip(todo, Group(env, [s for _, s in todo]).train(), strict=True):
            outcomes[i] = out
    return [o for o in outcomes if o is not None]


class Group:
    """One fused group's runs: recorded, trained together, ended one by one."""

    def __init__(self, env: RunEnv, specs: list[RunSpec]):
        self.env, self.specs = env, specs
        self.id = uuid.uuid4().hex[:12]
        self.loggers: list[RunLogger] = []

    def train(self) -> list[Outcome]:
        from model.fused.trainer import FusedTrainer, Member

        env, specs = self.env, self.specs
        prepared = [env.prepare(s.cfg) for s in specs]
        with tempfile.TemporaryDirectory(prefix=f"{WORKDIR_PREFIX}{os.getpid()}-") as tmp:
            members = []
            for k, ready in enumerate(prepared):
                out = Path(tmp) / f"member-{k}" / "ckpt"
                members.append(Member(ready.cfg.gpt, ready.cfg.train, out, None, ready.cfg.sample))
            trainer = FusedTrainer(members, prepared[0].dataset)
            for k, (spec, ready) in enumerate(zip(specs, prepared, strict=True)):
                ready = replace(ready, threads=trainer.threads)  # chosen now, as solo runs do
                assert spec.run_id is not None, "the sweep creates the run"
                tags = {
                    **spec.tags,
                    T.TAG_FUSED_GROUP: self.id,
                    T.TAG_FUSED_MEMBERS: str(len(specs)),
                }
                record_start(env, spec.run_id, ready, tags)
                staging = Path(tmp) / f"member-{k}" / "artifacts"
                staging.mkdir(parents=True)
                (staging / "config.json").write_text(config_json(ready), encoding="utf-8")
                logger = RunLogger(env, spec.run_id, staging, ready.cfg.train.max_steps)
                logger.show_steps = k == 0  # one bar for the group
                logger.who = spec.name
                self.loggers.append(logger)
                trainer.members[k].hooks = HookList([logger, *spec.hooks])
            env.progress.group_start(
                f"fused group {self.id}", [s.name for s in specs], prepared[0].cfg.train.max_steps
            )
            return self._run(trainer)

    def _run(self, trainer) -> list[Outcome]:
        env = self.env
        try:
            results = trainer.run()
        except (KeyboardInterrupt, Interrupted) as e:
            self.end_all(RunState.KILLED, stop_reason(e), trainer)
            raise
        except BaseException as e:
            self.end_all(RunState.FAILED, f"{type(e).__name__}: {first_line(e)}", trainer)
            raise
        outcomes, store_error = [], None
        for spec, logger, result in zip(self.specs, self.loggers, results, strict=True):
            state, reason, summary = RunState.COMPLETE, None, result.summary or {}
            if isinstance(result.error, DivergenceError):
                state, reason = RunState.FAILED, str(result.error)
                env.tracker.set_tags(spec.run_id, {T.TAG_FAILED_STEP: str(result.error.step)})
            elif result.error is not None:
                e = result.error
                state, reason = RunState.FAILED, f"{type(e).__name__}: {first_line(e)}"
            if summary:
                log_summary(env, spec.run_id, summary, spec.cfg.train.max_steps)
            try:
                finish(env, logger, spec.run_id, state, reason)
            except StoreError as e:  # this run ended FAILED; the others still end
                store_error = store_error or e
                state, reason = RunState.FAILED, str(e)
            env.progress.run_end(spec.name, state, summary, reason)
            outcomes.append(Outcome(spec.run_id, spec.name, state, summary, reason))
        if store_error is not None:
            raise store_error
        return outcomes

    def end_all(self, state: RunState, reason: str, trainer) -> None:
        """Every member's run ended (one that had failed on its own keeps its reason)."""
        run = trainer.last_run
        results = run.results if run is not None else None
        for k, (spec, logger) in enumerate(zip(self.specs, self.loggers, strict=True)):
            error = results[k].error if results else None
            if error is not None:
                finish(self.env, logger, spec.run_id, RunState.FAILED, str(error))
                self.env.progress.run_end(spec.name, RunState.FAILED, {}, str(error))
                continue
            finish(self.env, logger, spec.run_id, state, reason)
            self.env.progress.run_end(spec.name, state, {}, reason)
