"""A fused group's training and eval steps on its device, and how they run.

Everything a step reads is a device tensor: the corpus, the batch start indices of the
steps until the next host check (`ix`, filled from each member's own generator, the draws
`Dataset.get_batch` makes alone), the eval batches (drawn once, as `Trainer.evaluate`
draws them), counters, the lr table. So a step makes no host sync and the same step
function runs

- eager (the CPU path; CUDA fallback),
- compiled (`torch.compile` of the forward and of the optimizer step; kept in a
  `StepCache` the caller may share between groups so a process compiles a shape once),
- or captured in CUDA graphs (the step after `WARMUP` eager calls, each eval split's
  batch too) and replayed: one launch per step.

Losses go to a device buffer the trainer reads at its checks (every step on the CPU,
every `CUDA_CHECK_EVERY` on CUDA), never after each step.
"""

from __future__ import annotations

import time
from contextlib import nullcontext

import torch

from model.config import TrainConfig
from model.fused.model import Drops, Shape, member_losses
from model.fused.optim import FusedAdamW, MemberAdamW
from model.fused.params import FlatParams, Layout

MODES = ("eager", "compile", "graphs", "compile+graphs")
WARMUP = 2  # eager calls before a capture (compiles, allocator, cuBLAS workspaces)
CUDA_CHECK_EVERY = 10


def flat_losses(data, layout: Layout, shape: Shape, idx, targets, drops, counter, amp):
    """Per-member losses from the flat parameters: the function a mode compiles."""
    device, dtype = amp
    ctx = torch.autocast(device, dtype=dtype) if dtype is not None else nullcontext()
    with ctx:
        return member_losses(layout.views(data, dtype), shape, idx, targets, drops, counter)


def adamw_step(opt: FusedAdamW) -> None:
    opt.step()


class StepCache:
    """Compiled step functions, one per (function, mode), kept as long as the caller keeps
    this object (e.g. one per command), so later groups of a shape already compiled reuse
    the compiled code: torch.compile keys its entries on shapes and constants, not on the
    tensors' identity. `compile_s` accumulates the time spent in first calls."""

    def __init__(self):
        self.fns: dict[str, Compiled] = {}

    def get(self, name: str, fn, compiled: bool):
        if not compiled:
            return fn
        if name not in self.fns:
            self.fns[name] = Compiled(fn)
        return self.fns[name]

    @property
    def notes(self) -> list[str]:
        return [f"{name}: {c.error}" for name, c in self.fns.items() if c.error]


class Compiled:
    """torch.compile(fn); if compiling fails, fn itself from then on, with the reason kept
    (a failed compile runs nothing: the call is simply made again, eagerly)."""

    def __init__(self, fn):
        self.fn, self.compiled, self.error = fn, torch.compile(fn, dynamic=False), None

    def __call__(self, *args):
        if self.error is None:
            try:
                return self.compiled(*args)
            except Exception as e:
                if not is_compile_error(e):
                    raise
                self.error = f"compile failed, running eager: {type(e).__name__}: {e}"
        return self.fn(*args)


def is_compile_error(e: Exception) -> bool:
    """An error of torch.compile's machinery (dynamo, inductor, a backend), not of the model."""
    return type(e).__module__.startswith(("torch._dynamo", "torch._inductor", "triton"))


class Replayed:
    """fn (no arguments, no host syncs), eager for its first WARMUP calls (on a side stream),
    then captured in a CUDA graph and replayed. A failed capture is noted and fn stays eager."""

    def __init__(self, fn, capture: bool, notes: list[str], costs: list[float] | None):
        self.fn, self.capture, self.notes = fn, capture, notes
        self.costs = costs  # where the time of compiling calls and captures goes, if timed
        self.graph = None
        self.calls = 0

    def __call__(self) -> None:
        if self.graph is not None:
            self.graph.replay()
        elif self.costs is not None and self.calls <= WARMUP:
            t0 = sync_time()
            self.first_calls()
            self.costs[0] += sync_time() - t0
        else:
            self.first_calls()

    def first_calls(self) -> None:
        if not self.capture:
            self.calls += 1
            self.fn()
            return
        if self.calls < WARMUP:
            self.calls += 1
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                self.fn()
            torch.cuda.current_stream().wait_stream(side)
            return
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self.fn()
        except Exception as e:  # keep training, eager; the note says why
            self.capture = False
            self.notes.append(f"CUDA graph capture failed, running eager: {type(e).__name__}: {e}")
            torch.cuda.synchronize()
            self.fn()
            return
        self.graph = graph
        graph.replay()


def sync_time() -> float:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()
    return time.perf_counter()


class GroupSteps:
    """The device side of a fused group: buffers, the step functions and their runners."""

    def __init__(
        self,
        params: FlatParams,
        cfgs: list[TrainConfig],
        shape: Shape,
        drops: Drops | None,
        dataset,
        device: str,
        dtype: torch.dtype | None,
        mode: str,
        cache: StepCache | None = None,
        optimizer: str | None = None,
    ):
        # long: every buffer a captured CUDA graph reads is made here, before any capture
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)} (got {mode!r})")
        graphs = "graphs" in mode
        if graphs and device != "cuda":
            raise ValueError(f"mode {mode} needs a CUDA device (device is {device})")
        cfg, K = cfgs[0], params.members
        self.params, self.shape, self.drops, self.device = params, shape, drops, device
        self.amp = (device, dtype)
        self.accum = cfg.grad_accum_steps
        self.micro = cfg.batch_size // cfg.grad_accum_steps
        self.check_every = CUDA_CHECK_EVERY if device == "cuda" else 1
        self.notes: list[str] = []
        # the tensor-op AdamW where steps are compiled or captured; torch's kernel otherwise
        fused = device == "cuda" or mode != "eager"
        if optimizer is not None:
            fused = optimizer == "tensor"
        self.opt = (FusedAdamW if fused else MemberAdamW)(params, cfgs, device)
        self.cache = cache = cache or StepCache()
        compiled = "compile" in mode
        self.loss_fn = cache.get("losses", flat_losses, compiled)
        self.opt_fn = cache.get("adamw", adamw_step, compiled and fused)
        T = shape.block_size
        self.data = {s: getattr(dataset, s).to(device) for s in ("train", "val")}
        self.arange = torch.arange(T + 1, device=device)
        self.ix = torch.zeros(self.check_every, K, cfg.batch_size, dtype=torch.long, device=device)
        self.pinned = [self.ix.cpu().pin_memory() if device == "cuda" else None for _ in range(2)]
        self.seg = torch.zeros((), dtype=torch.long, device=device)
        self.counter = torch.zeros((), dtype=torch.long, device=device)  # micro-steps done
        self.losses = torch.zeros(self.check_every, K, device=device)
        # CUDA: E eval batches per forward (a bigger batch fills the GPU; their mean is the
        # same mean), E the largest divisor of eval_iters with E * B <= 8 micro-batches
        E = 1
        if device == "cuda":
            E = max(e for e in range(1, cfg.eval_iters + 1)
                    if cfg.eval_iters % e == 0 and e * cfg.batch_size <= 8 * self.micro)  # fmt: skip
        self.eval_chunks = cfg.eval_iters // E
        self.eval_ix = [
            ix.view(self.eval_chunks, E, K, -1).transpose(1, 2).reshape(self.eval_chunks, K, -1)
            for ix in self.eval_batches(cfgs, dataset, T)
        ]
        self.eval_i = torch.zeros((), dtype=torch.long, device=device)
        self.eval_losses = torch.zeros(2, self.eval_chunks, K, device=device)
        self.costs = [0.0] if mode != "eager" else None
        self.train = Replayed(self.train_step, graphs, self.notes, self.costs)
        self.evals = [
            Replayed(lambda s=s: self.eval_step(s), graphs, self.notes, self.costs) for s in (0, 1)
        ]
        self.segments = 0

    def eval_batches(self, cfgs: list[TrainConfig], dataset, T: int) -> list[torch.Tensor]:
        """(eval_iters, K, B) start indices per split: member k's generator seeded seed + 1,
        train split first, as `Trainer.evaluate` draws them."""
        cfg = cfgs[0]
        rows = {"train": [], "val": []}
        for c in cfgs:
            g = torch.Generator().manual_seed(c.seed + 1)
            for split in ("train", "val"):
                n = len(getattr(dataset, split)) - T
                rows[split].append(
                    torch.stack(
                        [
                            torch.randint(n, (cfg.batch_size,), generator=g)
                            for _ in range(cfg.eval_iters)
                        ]
                    )
                )
        return [torch.stack(rows[s], dim=1).to(self.device) for s in ("train", "val")]

    def batch(self, split: str, ix: torch.Tensor):
        chunk = self.data[split][ix.unsqueeze(-1) + self.arange]
        return chunk[..., :-1], chunk[..., 1:]

    def train_step(self) -> None:
        self.params.data.grad = None
        x, y = self.batch("train", self.ix.index_select(0, self.seg.view(1))[0])
        total = None
        for xm, ym in zip(x.split(self.micro, 1), y.split(self.micro, 1), strict=True):
            losses = self.loss_fn(
                self.params.data, self.params.layout, self.shape, xm, ym, self.drops,
                self.counter, self.amp,
            )  # fmt: skip
            (losses / self.accum).sum().backward()
            part = losses.detach() / self.accum
            total = part if total is None else total + part
            self.counter.add_(1)
        if isinstance(self.opt, FusedAdamW):
            self.opt_fn(self.opt)
        else:
            self.opt.step()
        self.losses.index_copy_(0, self.seg.view(1), total.view(1, -1))
        self.seg.add_(1)

    @torch.no_grad()
    def eval_step(self, split: int) -> None:
        ix = self.eval_ix[split].index_select(0, self.eval_i.view(1))[0]
        x, y = self.batch(("train", "val")[split], ix)
        losses = self.loss_fn(
            self.params.data, self.params.layout, self.shape, x, y, None, None, self.amp
        )
        self.eval_losses[split].index_copy_(0, self.eval_i.view(1), losses.view(1, -1))
        self.eval_i.add_(1)

    def start_segment(self, ix: torch.Tensor) -> None:
        """The batches (n, K, B) of the next n <= check_every steps; the previous segment's
        steps have been read back (a host sync), so its buffers are free."""
        if self.device == "cuda":
            host = self.pinned[self.segments % 2][: len(ix)]
            host.copy_(ix)
            self.ix[: len(ix)].copy_(host, non_blocking=True)
        else:
            self.ix[: len(ix)].copy_(ix)
        self.seg.zero_()
        self.segments += 1

    def read_losses(self, n: int) -> list[list[float]]:
        """The last segment's n step losses, (n, K) as lists: the host sync of a check."""
        return self.losses[:n].tolist()

    def evaluate(self) -> list[tuple[float, float]]:
        """(train, val) mean loss per member over the fixed eval batches: one host sync."""
        for split in (0, 1):
            self.eval_i.zero_()
            for _ in range(self.eval_chunks):
                self.evals[split]()
        means = self.eval_losses.mean(dim=1)  # (2, K)
        return [tuple(m) for m in means.t().tolist()]

    def timed_sync(self) -> float:
        return sync_time()

    @property
    def all_notes(self) -> list[str]:
        """Capture failures of this group, compile failures of its cache."""
        return self.notes + self.cache.notes

    @property
    def compile_s(self) -> float:
        """Time in compiling first calls and graph captures so far (0 eager)."""
        return self.costs[0] if self.costs is not None else 0.0
