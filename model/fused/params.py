"""The parameters of K same-shape GPTs as one flat (K, P) leaf tensor.

Member k's row holds exactly the weights a solo `GPT` has (its init built as the solo
Trainer builds it: `torch.manual_seed(seed); GPT(config)`). The fused forward takes
(K, *shape) views of it with one `split` (whose backward is one `cat`, so the gradient
arrives as one (K, P) tensor), and under autocast casts the matmul weights to the compute
dtype in one op. Clipping and AdamW are then a few tensor ops on the whole group. Columns:
the matmul weights, then the embeddings (with them: the 2-D weights `configure_optimizer`
decays, [0, n_decay)), then the vectors (LayerNorm weights, biases).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

import torch

from model.gpt import GPT, GPTConfig


@dataclass(frozen=True)
class Slot:
    name: str  # the solo GPT's parameter name (named_parameters: the tied weight once)
    offset: int
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        return prod(self.shape)


@dataclass(frozen=True)
class Layout:
    """Where each weight sits in a member's row (hashable: a compiled forward keys on it)."""

    slots: tuple[Slot, ...]
    n_matmul: int  # columns [0, n_matmul): the matmul weights

    def views(self, data: torch.Tensor, dtype: torch.dtype | None = None) -> dict:
        """name -> (K, *shape) differentiable views of data (K, P); the matmul weights cast
        to dtype (the autocast dtype: the casts autocast would make per weight, in one op)."""
        K, P = data.shape
        head, rest = data.split([self.n_matmul, P - self.n_matmul], dim=1)
        if dtype is not None:
            head = head.to(dtype)
        parts = [*head.split([s.numel for s in self.slots if s.offset < self.n_matmul], dim=1)]
        parts += rest.split([s.numel for s in self.slots if s.offset >= self.n_matmul], dim=1)
        return {s.name: t.view(K, *s.shape) for s, t in zip(self.slots, parts, strict=True)}


def solo_init(config: GPTConfig, seed: int) -> GPT:
    """A run's initial model, exactly as the solo Trainer builds it (on the CPU)."""
    torch.manual_seed(seed)
    return GPT(config)


def is_matmul(name: str, p: torch.Tensor) -> bool:
    return p.dim() >= 2 and not name.startswith(("transformer.wte", "transformer.wpe"))


def column_order(named: list[tuple[str, torch.Tensor]]) -> list[tuple[str, torch.Tensor]]:
    def group(item):
        name, p = item
        return 0 if is_matmul(name, p) else 1 if p.dim() >= 2 else 2

    return sorted(named, key=group)  # stable: named_parameters order within a group


class FlatParams:
    def __init__(self, config: GPTConfig, seeds: list[int], device: str):
        self.config = config
        first = solo_init(config, seeds[0])
        named = list(first.named_parameters())
        ordered = column_order(named)
        self.slots, offset = [], 0
        for name, p in ordered:
            self.slots.append(Slot(name, offset, tuple(p.shape)))
            offset += p.numel()
        self.n_params = offset
        self.n_matmul = sum(p.numel() for n, p in ordered if is_matmul(n, p))
        self.n_decay = sum(p.numel() for _, p in ordered if p.dim() >= 2)
        # state_dict keys of a solo GPT, each naming the slot that holds it (tied: one slot)
        by_ptr = {p.data_ptr(): n for n, p in named}
        self.keys = {k: by_ptr[t.data_ptr()] for k, t in first.state_dict().items()}
        self.data = torch.empty(len(seeds), offset, device=device)
        for k, seed in enumerate(seeds):
            model = first if k == 0 else solo_init(config, seed)
            params = dict(model.named_parameters())
            row = torch.cat([params[s.name].detach().reshape(-1) for s in self.slots])
            self.data[k].copy_(row)
        self.data.requires_grad_(True)
        self.layout = Layout(tuple(self.slots), self.n_matmul)

    @property
    def members(self) -> int:
        return self.data.size(0)

    @property
    def grad(self) -> torch.Tensor:
        return self.data.grad

    def views(self, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
        return self.layout.views(self.data, dtype)

    def member_state_dict(self, k: int) -> dict[str, torch.Tensor]:
        """Member k's weights as a solo GPT's state_dict (CPU copies; the tied weight is one
        tensor under both names, as in a solo state_dict), for `GPT.load_state_dict`."""
        own = {
            s.name: self.data[k, s.offset : s.offset + s.numel].view(s.shape).to("cpu", copy=True)
            for s in self.slots
        }
        return {key: own[name] for key, name in self.keys.items()}

    def member_model(self, k: int, device: str) -> GPT:
        """Member k as a solo GPT on device, in eval mode (torch's global RNG untouched)."""
        with torch.random.fork_rng(devices=[]):
            model = GPT(self.config)
        model.load_state_dict(self.member_state_dict(k))
        return model.to(device).eval()

    def zero_member(self, k: int) -> None:
        """A failed member's row: zeros, so its slot computes finite numbers from then on."""
        with torch.no_grad():
            self.data[k].zero_()
