"""Progress for people: a live line per run on a terminal, one summary line per run otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any


class Progress:
    def __init__(self, live: bool | None = None, stream=None):
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.sweep_total = 0
        self.sweep_index = 0
        self._name = ""
        self._max_steps = 0
        self._t0 = 0.0
        self._last_draw = 0.0

    def say(self, message: str) -> None:
        self._clear()
        print(message, file=self.stream, flush=True)

    def warn(self, message: str) -> None:
        self.say(f"warning: {message}")

    def sweep(self, total: int) -> None:
        self.sweep_total = total
        self.sweep_index = 0

    def run_start(self, name: str, max_steps: int) -> None:
        self.sweep_index += 1
        self._name = name
        self._max_steps = max_steps
        self._t0 = time.perf_counter()

    def _prefix(self) -> str:
        if self.sweep_total > 1:
            return f"[{self.sweep_index}/{self.sweep_total}] {self._name}"
        return self._name

    def step(self, step: int, loss: float, tokens_per_s: float) -> None:
        if not self.live:
            return
        now = time.perf_counter()
        if now - self._last_draw < 0.1 and step < self._max_steps:
            return
        self._last_draw = now
        done = step  # the trainer counts steps from 1
        elapsed = now - self._t0
        eta = elapsed / done * (self._max_steps - done) if done else 0.0
        width = 20
        filled = int(width * done / max(1, self._max_steps))
        bar = "#" * filled + "." * (width - filled)
        line = (
            f"{self._prefix()} [{bar}] step {done}/{self._max_steps} "
            f"loss {loss:.4f} {tokens_per_s:,.0f} tok/s eta {eta:4.0f}s"
        )
        self.stream.write("\r\x1b[2K" + line)
        self.stream.flush()

    def _clear(self) -> None:
        if self.live:
            self.stream.write("\r\x1b[2K")

    def run_end(
        self, name: str, state: str, summary: dict[str, Any], reason: str | None = None
    ) -> None:
        if state == "complete":
            msg = (
                f"{self._prefix() if name == self._name else name}: best val_loss "
                f"{summary.get('best_val_loss', float('nan')):.4f} (ppl {summary.get('best_val_ppl', float('nan')):.2f}) "
                f"at step {int(summary.get('best_step', 0))}, {summary.get('wall_s', 0):.1f}s"
            )
        else:
            msg = f"{self._prefix() if name == self._name else name}: {state}" + (
                f" ({reason})" if reason else ""
            )
        self.say(msg)
