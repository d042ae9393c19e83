"""Dropout masks from a per-run stream, the same masks for a run trained alone or fused.

A run's masks are a function of its seed only (never of torch's global generator, which
weight init consumes, nor of the other members of a fused group). Two sources:

- `GeneratorMasks` (CPU): one torch.Generator per member (mt19937, seeded by
  `dropout_seed(seed)`), four 16-bit draws cut from each 64-bit word, as cheap as the
  global-generator masks it replaced (~1.5 ns/element). Member k of a fused group draws
  from its own generator, site by site in forward order, the same words as alone.
- `HashMasks` (CUDA, and the CPU tests of that path): a counter-based hash of (seed,
  dropout site, micro-step counter, element index). A pure function of device tensors, so
  it compiles into the kernel that applies it and can be captured in a CUDA graph (the
  counter is a device tensor the captured step advances).

A mask keeps an element with probability 1 - round(p * 65536) / 65536 and scales kept ones
by the inverse of that (p = 0.1 is applied as 0.100006): the expectation is exact.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

M32 = 0xFFFFFFFF
M64 = 2**64 - 1


def splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def dropout_seed(seed: int) -> int:
    """The seed of a run's dropout stream: apart from its batch stream (seeded by `seed`)
    and its eval batches (`seed + 1`), and from every other run's streams."""
    return splitmix64(splitmix64(seed) ^ 0xD50F)


def drop_count(p: float) -> int:
    """Dropped values out of 65536: p to 1/65536."""
    return round(float(p) * 65536)


def mix32(x: torch.Tensor) -> torch.Tensor:
    """A bijective 32-bit mixer (xorshift-multiply, after C. Wellons' lowbias32) on int64
    tensors holding [0, 2^32). Both multipliers are below 2^31, so no product overflows
    int64 (whose wrap-around a compiler may assume away)."""
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & M32
    x = x ^ (x >> 15)
    x = (x * 0x45D9F3B) & M32
    return x ^ (x >> 16)


class GeneratorMasks:
    """One CPU generator per member; `offset` maps a draw to [0, 65536): draw - offset."""

    offset = -32768

    def __init__(self, seeds: Sequence[int]):
        self.generators = [torch.Generator().manual_seed(dropout_seed(s)) for s in seeds]

    def bits(self, n: int, site: int, counter: torch.Tensor | None = None) -> torch.Tensor:
        """(K, n) int16 draws: member k's next n from its own generator."""
        words = torch.empty(len(self.generators), (n + 3) // 4, dtype=torch.int64)
        for row, g in zip(words, self.generators, strict=True):
            row.random_(-(2**63), None, generator=g)
        return words.view(torch.int16)[:, :n]

    def keep(self, like: torch.Tensor, p: float) -> torch.Tensor:
        """A solo run's mask shaped and typed like `like` (the stream of member 0)."""
        drop = drop_count(p)
        bits = self.bits(like.numel(), 0)[0].view(like.shape)
        scale = torch.full((), 65536 / (65536 - drop), dtype=like.dtype)
        return torch.where(bits >= drop + self.offset, scale, torch.zeros((), dtype=like.dtype))

    def state(self) -> list[torch.Tensor]:
        return [g.get_state() for g in self.generators]


class HashMasks:
    """Counter-based masks: member k's mask at (site, counter) is a pure function of them."""

    offset = 0

    def __init__(self, seeds: Sequence[int], device: str | torch.device = "cpu"):
        keys = [dropout_seed(s) for s in seeds]
        self.seed_lo = torch.tensor([[k & M32] for k in keys], dtype=torch.int64, device=device)
        self.seed_hi = torch.tensor([[k >> 32] for k in keys], dtype=torch.int64, device=device)

    def bits(self, n: int, site: int, counter: torch.Tensor) -> torch.Tensor:
        """(K, n) values in [0, 65536): hash(seed, site, counter, element)."""
        c = counter.to(torch.int64) & M32
        ka = mix32(self.seed_lo ^ mix32((c + site * 0x9E3779B1) & M32))  # (K, 1)
        kb = mix32(self.seed_hi ^ mix32((c * 0x2C1B3C6D + site) & M32))
        e = torch.arange(n, dtype=torch.int64, device=ka.device)
        h = mix32((e + ka) & M32)
        return mix32(h ^ kb) & 0xFFFF


def member_mask(
    masks: GeneratorMasks | HashMasks,
    like: torch.Tensor,
    thr: torch.Tensor,
    scale: torch.Tensor,
    site: int,
    counter: torch.Tensor | None,
) -> torch.Tensor:
    """The keep mask for a fused (K, ...) tensor: member k keeps draws >= thr[k] (drop count
    plus the source's offset, (K, 1), see `thresholds`) scaled by scale[k] ((K, 1), like's
    dtype): the values `GeneratorMasks.keep` gives member k alone."""
    K = like.size(0)
    bits = masks.bits(like.numel() // K, site, counter)
    return ((bits >= thr) * scale).view(like.shape)


def thresholds(masks: GeneratorMasks | HashMasks, drops: Sequence[int], device) -> torch.Tensor:
    dtype = torch.int16 if isinstance(masks, GeneratorMasks) else torch.int64
    return torch.tensor([[d + masks.offset] for d in drops], dtype=dtype, device=device)


def scales(drops: Sequence[int], dtype: torch.dtype, device) -> torch.Tensor:
    return torch.tensor([[65536 / (65536 - d)] for d in drops], dtype=dtype, device=device)
