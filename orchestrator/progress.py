"""Progress for people, on rich: a live bar per run on a terminal; plain lines otherwise.

On a terminal: one bar per run (step N/M, loss, tokens/s, time left), and a line at each
eval and at the end of each run above it. Not on a terminal (nohup, CI, `| tee`): the
same eval and end lines, so a log shows val loss as training goes.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

from .tracking.schema import RunState


def _eta(seconds: float) -> str:
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    seconds = round(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class Progress:
    """The trainer's and sweeps' events as text; `live=None` detects a terminal."""

    def __init__(self, live: bool | None = None, stream=None):
        from rich.console import Console

        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.console = Console(
            file=self.stream,
            force_terminal=self.live,
            no_color=not self.live,
            highlight=False,
            soft_wrap=True,
        )
        self.sweep_total = 0
        self.sweep_index = 0
        self._name = ""
        self._max_steps = 0
        self._t0 = 0.0
        self._bar = None
        self._task = None
        self._runs = 1

    # -- messages ------------------------------------------------------------------------
    def say(self, message: str) -> None:
        self.console.print(message, markup=False)

    def warn(self, message: str) -> None:
        self.say(f"warning: {message}")

    # -- a sweep of runs -----------------------------------------------------------------
    def sweep(self, total: int) -> None:
        self.sweep_total = total
        self.sweep_index = 0

    def _prefix(self) -> str:
        if self.sweep_total > 1:
            first = self.sweep_index - self._runs + 1
            at = f"{first}-{self.sweep_index}" if self._runs > 1 else str(self.sweep_index)
            return f"[{at}/{self.sweep_total}] {self._name}"
        return self._name

    def run_start(self, name: str, max_steps: int, runs: int = 1) -> None:
        """A run starts, or `runs` runs trained together (a fused group) under `name`."""
        self._runs = runs
        self.sweep_index += runs
        self._name = name
        self._max_steps = max_steps
        self._t0 = time.perf_counter()
        if self.live:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn
            from rich.progress import Progress as Bar

            self._bar = Bar(
                TextColumn("{task.description}"),
                BarColumn(bar_width=24),
                TextColumn("step"),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                console=self.console,
                auto_refresh=False,
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task(
                self._prefix().replace("[", r"\["), total=max_steps, info=""
            )
            self._last_draw = 0.0

    def group_start(self, name: str, members: list[str], max_steps: int) -> None:
        """Runs trained together as one fused model start: one line names them, one bar."""
        self.run_start(name, max_steps, runs=len(members))
        self.say(
            f"{self._prefix()}: {len(members)} runs trained as one model ({', '.join(members)})"
        )

    def _eta_s(self, step: int) -> float:
        elapsed = time.perf_counter() - self._t0
        return elapsed / step * (self._max_steps - step) if step else math.nan

    def step(self, step: int, loss: float, tokens_per_s: float) -> None:
        if self._bar is None:
            return
        info = f"loss {loss:.4f}  {tokens_per_s:,.0f} tok/s  eta {_eta(self._eta_s(step))}"
        self._bar.update(self._task, completed=step, info=info)
        now = time.perf_counter()
        if now - self._last_draw >= 0.1 or step >= self._max_steps:
            self._last_draw = now
            self._bar.refresh()

    def eval(self, step: int, metrics: dict[str, float], who: str | None = None) -> None:
        """An eval line; `who`: the member of a fused group it is of."""
        ppl = metrics.get("val_ppl", math.nan)
        self.say(
            f"{who or self._prefix()} step {step}/{self._max_steps}: "
            f"train {metrics.get('train_loss', math.nan):.4f} "
            f"val {metrics.get('val_loss', math.nan):.4f} (ppl {ppl:.2f}) "
            f"{metrics.get('tokens_per_s', 0.0):,.0f} tok/s, eta {_eta(self._eta_s(step))}"
        )

    def run_end(
        self, name: str, state: RunState, summary: dict[str, Any], reason: str | None = None
    ) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        who = self._prefix() if name == self._name else name
        if state is RunState.COMPLETE:
            msg = (
                f"{who}: best val_loss {summary.get('best_val_loss', math.nan):.4f} "
                f"(ppl {summary.get('best_val_ppl', math.nan):.2f}) "
                f"at step {int(summary.get('best_step', 0))}, {summary.get('wall_s', 0):.1f}s"
            )
        else:
            msg = f"{who}: {state}" + (f" ({reason})" if reason else "")
        self.say(msg)
