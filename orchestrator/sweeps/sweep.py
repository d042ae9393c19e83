"""`Sweep`: one step of an experiment, and the life of its parent run.

Every strategy (baseline seeds, an ablation, until-clear, a confirmation, a search) is a plan
run on one Sweep, which does what they all need:

- open: find the sweep by its key tags and resume it, or create it; of two processes that
  create it at once the earliest parent stays and the other joins it; reopen a parent that
  ended (or whose process died); end KILLED the children a dead process left RUNNING;
  record the settings (margin, alpha);
- train: skip what this sweep already has, link what another run of the experiment already
  trained (`reuse.py`), estimate the time, and hand the rest to the execution layer under
  the signal guard (an interrupt ends the parent KILLED, an error FAILED);
- close: build the table once, attach it, end the parent unless another live process still
  trains into it (that one closes it), and return the table.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from .. import tracking as T
from ..errors import Interrupted, first_line
from ..execution.env import RunEnv
from ..execution.estimate import say_estimate
from ..execution.local import run_specs
from ..execution.spec import Outcome, RunSpec
from ..tracking import RunState
from .reuse import link, reusable

if TYPE_CHECKING:
    from ..results.settings import Settings
    from ..results.table import Table


@contextmanager
def guarded(tracker: T.Tracker, run_id: str) -> Iterator[str]:
    """A parent run is never left RUNNING: an interrupt ends it KILLED, an error FAILED."""
    try:
        yield run_id
    except (KeyboardInterrupt, Interrupted):
        tracker.end_run(run_id, RunState.KILLED, "interrupted")
        raise
    except BaseException as e:
        tracker.end_run(run_id, RunState.FAILED, f"{type(e).__name__}: {first_line(e)}")
        raise


def earliest(runs: list[T.RunInfo]) -> T.RunInfo | None:
    return min(runs, key=lambda r: (r.start_time, r.run_id), default=None)


def key_filter(key: dict[str, str]) -> str:
    return " and ".join(f"tags.`{k}` = '{v}'" for k, v in key.items())


class Sweep:
    """A parent run and the runs trained (or linked) under it for one command."""

    def __init__(self, env: RunEnv, run: T.RunInfo, settings: Settings | None = None):
        self.env = env
        self.tracker = env.tracker
        self.run_id = run.run_id
        self.name = run.name
        self.settings = settings
        self.outcomes: list[Outcome] = []  # what this command trained or linked

    # -- opening -------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        env: RunEnv,
        name: str,
        key: dict[str, str],
        *,
        settings: Settings | None = None,
        tags: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
    ) -> Sweep:
        """The sweep whose parent carries the `key` tags: resumed if it exists, else created
        (with `tags` and `params` too)."""
        tracker = env.tracker
        found = cls.find(tracker, key)
        if found is None:
            mine = cls.create(env, name, {**key, **(tags or {})}, settings=settings, params=params)
            # Two processes that start the same sweep at once both create a parent: the
            # earliest stays, the other is removed and joins it (each run trains once).
            first = cls.find(tracker, key)
            if first is None or first.run_id == mine.run_id:
                return mine
            tracker.delete_run(mine.run_id)
            found = first
        return cls.resume(env, found, settings=settings)

    @classmethod
    def create(
        cls,
        env: RunEnv,
        name: str,
        tags: dict[str, str],
        *,
        settings: Settings | None = None,
        params: dict[str, Any] | None = None,
    ) -> Sweep:
        """A new parent run."""
        tracker = env.tracker
        run_id = tracker.create_run(name, tags={**tags, **(settings.tags() if settings else {})})
        if params:
            tracker.log_params(run_id, params)
        return cls(env, tracker.get_run(run_id), settings)

    @classmethod
    def resume(
        cls,
        env: RunEnv,
        run: T.RunInfo,
        *,
        settings: Settings | None = None,
        reopen: bool = True,
        reap: bool = True,
    ) -> Sweep:
        """An existing parent: reopened (unless told not to: a baseline gaining a seed stays
        as it is), its settings recorded, children left RUNNING by a dead process ended
        (unless told not to: a search recovers its trials itself)."""
        tracker = env.tracker
        if reopen and (run.state is not RunState.RUNNING or T.orphaned(run)):
            tracker.reopen(run.run_id)
        if settings is not None:
            tracker.set_tags(run.run_id, settings.tags())
        for child in T.reap_stale(tracker, tracker.children(run.run_id)) if reap else []:
            env.progress.say(
                f"{child.name}: was left RUNNING by a process that died; ended as KILLED, "
                "training it again"
            )
        return cls(env, run, settings)

    # -- what it has -----------------------------------------------------------------------
    def children(self) -> list[T.RunInfo]:
        return self.tracker.children(self.run_id)

    def finished(self) -> dict[str, T.RunInfo]:
        """This sweep's runs that count, by config hash (the first recorded wins): a result,
        or a divergence (a diverged seed is part of the verdicts, not trained again)."""
        from ..results.groups import seed_loss

        out: dict[str, T.RunInfo] = {}
        for run in self.children():
            h = run.tags.get(T.TAG_CONFIG_HASH)
            if h and seed_loss(run) is not None:
                out.setdefault(h, run)
        return out

    # -- training --------------------------------------------------------------------------
    @classmethod
    def find(cls, tracker: T.Tracker, key: dict[str, str]) -> T.RunInfo | None:
        """The parent run with these key tags that `open` would resume (the earliest)."""
        return earliest(tracker.search(key_filter(key)))

    def guard(self):
        """`with sweep.guard():` an interrupt ends the parent KILLED, an error FAILED."""
        return guarded(self.tracker, self.run_id)

    def train(self, specs: Sequence[RunSpec], *, estimate: bool = True) -> list[Outcome]:
        """Have every spec: skip what this sweep has, link what another run of the experiment
        trained, train the rest in order. Outcomes in spec order. (Plans call it inside
        `guard()`; a search trial's objective has its own guard.)"""
        env = self.env
        have = self.finished()
        results: dict[int, Outcome] = {}
        todo: list[tuple[int, RunSpec]] = []
        for i, spec in enumerate(specs):
            ready = env.prepare(spec.cfg)
            spec = replace(spec, cfg=ready.cfg)
            mine = have.get(ready.cfg.config_hash())
            if mine is not None and spec.run_id is None:
                how = "finished" if T.has_result(mine) else "diverged (a counted seed)"
                env.progress.say(
                    f"{spec.name}: already {how} with the same config, not trained again"
                )
                results[i] = Outcome(
                    mine.run_id, mine.name, mine.state, dict(mine.metrics), new=False
                )
                continue
            if mine is not None and T.has_result(mine):
                source: T.RunInfo | None = T.source_of(self.tracker, mine)
            else:
                source = reusable(env, ready, self.run_id)
            if source is not None:
                results[i] = link(env, spec, source, self.run_id)
                continue
            todo.append((i, spec))
        if todo and estimate:
            say_estimate(env, todo[0][1].cfg, len(todo))
        env.progress.sweep(len(todo))
        trained = run_specs(env, [s for _, s in todo], self.open_run)
        for (i, _), out in zip(todo, trained, strict=True):
            results[i] = out
        outcomes = [results[i] for i in range(len(specs))]
        self.outcomes += outcomes
        return outcomes

    def open_run(self, spec: RunSpec) -> RunSpec | Outcome:
        """Create the spec's run right before it trains, unless another live process of this
        sweep trains (or trained) the same config: then its Outcome, and nothing recorded."""
        if spec.run_id is not None:
            return spec
        h = spec.cfg.config_hash()
        tags = {**spec.tags, T.TAG_CONFIG_HASH: h, T.TAG_SEED: str(spec.cfg.train.seed)}
        run_id = self.tracker.create_run(spec.name, parent_id=self.run_id, tags=tags)
        other = self.claimed_elsewhere(run_id, h)
        if other is None:
            return replace(spec, run_id=run_id)
        self.tracker.delete_run(run_id)
        reason = f"trained by another process (run {other.run_id}); not trained twice"
        self.env.progress.say(f"{spec.name}: {reason}")
        return Outcome(other.run_id, spec.name, RunState.DUPLICATE, {}, reason)

    def claimed_elsewhere(self, run_id: str, config_hash: str) -> T.RunInfo | None:
        """Another run of the same config in this sweep that finished, or that a live process
        started before this one: two commands at once train each (config, seed) once. Every
        process creates its run first and then looks, so of two racing processes at least
        the later one sees the earlier one's run (MLflow's store orders them)."""
        mine = self.tracker.get_run(run_id)
        for run in self.children():
            if run.run_id == run_id or run.tags.get(T.TAG_CONFIG_HASH) != config_hash:
                continue
            if T.has_result(run):
                return run
            earlier = (run.start_time, run.run_id) < (mine.start_time, mine.run_id)
            if run.state is RunState.RUNNING and earlier and not T.orphaned(run):
                return run
        return None

    # -- closing -------------------------------------------------------------------------
    def others_running(self) -> bool:
        """Another live process still trains into this sweep (it will end the parent)."""
        return any(
            r.state is RunState.RUNNING
            and not T.orphaned(r)
            and r.tags.get(T.TAG_PID) != str(os.getpid())
            for r in self.children()
        )

    def table(self, alpha: float | None = None, margin: float | None = None) -> Table:
        from ..results.table import sweep_table

        return sweep_table(self.tracker, self.tracker.get_run(self.run_id), alpha, margin)

    def close(
        self,
        state: RunState = RunState.COMPLETE,
        reason: str | None = None,
        *,
        idle: bool | None = None,
    ) -> Table:
        """Build the table once, attach it, and end the parent run unless another process
        still trains into it (`idle` given: the caller knows). Returns the table."""
        from .attach import attach_table

        table = self.table()
        attach_table(self.tracker, self.run_id, table)
        if idle is None:
            idle = not self.others_running()
        if idle:
            self.tracker.end_run(self.run_id, state, reason)
        else:
            self.env.progress.say(
                "another process still trains into this sweep: it ends the parent run"
            )
        return table

    def end(self, state: RunState, reason: str | None = None) -> None:
        self.tracker.end_run(self.run_id, state, reason)
