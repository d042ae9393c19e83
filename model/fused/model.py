"""The forward pass of K same-shape GPTs at once: batched matmuls over the member dimension.

Member k computes what a solo `GPT` with its weights computes (model/gpt.py), on its own
batch, with its own dropout probability and masks (model/masks.py): the same op sequence
per member (the CPU attention path with the mask folded in where dropout is on, SDPA where
it is off), up to float rounding of batched against single matmuls. `member_losses` is a
function of tensors and constants only, so one `torch.compile` of it serves every group of
the same shape in a process (model/fused/steps.py holds the compiled ones).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from model.masks import GeneratorMasks, HashMasks, member_mask, scales, thresholds


@dataclass(frozen=True)
class Shape:
    """What a compiled forward specialises on."""

    members: int
    n_layer: int
    n_head: int
    n_embed: int
    vocab_size: int
    block_size: int
    bias: bool
    dropout: bool  # some member drops out while training


class Drops:
    """Per-member dropout: the mask source, thresholds, and scales per dtype."""

    def __init__(self, masks: GeneratorMasks | HashMasks, probs: list[float], device: str):
        from model.masks import drop_count

        counts = [drop_count(p) for p in probs]
        self.masks = masks
        self.any = any(counts)
        self.thr = thresholds(masks, counts, device)
        self.scale_f32 = scales(counts, torch.float32, device)
        self.scale_bf16 = scales(counts, torch.bfloat16, device)
        self.scale_f16 = scales(counts, torch.float16, device)

    def mask(self, like: torch.Tensor, site: int, counter) -> torch.Tensor:
        dt = like.dtype
        scale = (
            self.scale_bf16
            if dt == torch.bfloat16
            else self.scale_f16
            if dt == torch.float16
            else self.scale_f32
        )
        return member_mask(self.masks, like, self.thr, scale, site, counter)


def layer_norm(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    """LayerNorm of (K, N, C) with member k's weight w[k] and bias b[k] ((K, C))."""
    y = F.layer_norm(x, (x.size(-1),))
    if b is None:
        return y * w[:, None]
    return torch.addcmul(b[:, None], y, w[:, None])


def linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    """x (K, N, in) @ w[k].T (+ b[k]) for each member: w (K, out, in), b (K, out)."""
    if b is None:
        return torch.bmm(x, w.transpose(1, 2))
    return torch.baddbmm(b[:, None], x, w.transpose(1, 2))


def attention(x, w, s: Shape, B: int, T: int, drops: Drops | None, site: int, counter):
    """Causal self-attention of (K, B*T, C), before the residual dropout; drops None = off."""
    K, C, nh = s.members, s.n_embed, s.n_head
    hs = C // nh
    qkv = linear(x, w["attn.c_attn.weight"], w.get("attn.c_attn.bias"))
    q, k, v = (
        t.reshape(K, B, T, nh, hs).transpose(2, 3).reshape(K * B * nh, T, hs)
        for t in qkv.split(C, dim=2)
    )
    if drops is not None:  # model/gpt.py's CPU path: causal bias, softmax, mask, bmm
        bias = torch.full((T, T), float("-inf"), device=x.device).triu(1)
        att = torch.baddbmm(
            bias.to(q.dtype).expand(K * B * nh, T, T),
            q,
            k.transpose(1, 2),
            alpha=1.0 / math.sqrt(hs),
        )
        att = torch.softmax(att, dim=-1)
        att = att * drops.mask(att.view(K, -1), site, counter).view(att.shape)
        y = torch.bmm(att, v)
    else:
        y = F.scaled_dot_product_attention(
            q.view(K * B, nh, T, hs), k.view(K * B, nh, T, hs), v.view(K * B, nh, T, hs),
            is_causal=True,
        )  # fmt: skip
    y = y.reshape(K, B, nh, T, hs).transpose(2, 3).reshape(K, B * T, C)
    return linear(y, w["attn.c_proj.weight"], w.get("attn.c_proj.bias"))


def residual(x, h, drops: Drops | None, site: int, counter):
    if drops is None:
        return x + h
    return torch.addcmul(x, h, drops.mask(h, site, counter))


def member_logits(w, s: Shape, idx: torch.Tensor, drops: Drops | None, counter) -> torch.Tensor:
    """Logits (K, B*T, V) of idx (K, B, T); drops None is eval (or no dropout anywhere).
    Dropout sites in forward order: 0 the embeddings, then per layer l: 1 + 3l attention,
    2 + 3l its residual, 3 + 3l the MLP's residual."""
    K, B, T = idx.shape
    x = embed(w, s, idx, 0).view(K, B * T, s.n_embed)
    if drops is not None:
        x = x * drops.mask(x, 0, counter)
    for i in range(s.n_layer):
        lw = layer(w, i)
        h = layer_norm(x, lw["ln_1.weight"], lw.get("ln_1.bias"))
        h = attention(h, lw, s, B, T, drops, 1 + 3 * i, counter)
        x = residual(x, h, drops, 2 + 3 * i, counter)
        h = mlp(layer_norm(x, lw["ln_2.weight"], lw.get("ln_2.bias")), lw)
        x = residual(x, h, drops, 3 + 3 * i, counter)
    return head(w, x)


def embed(w, s: Shape, idx: torch.Tensor, pos: int) -> torch.Tensor:
    """Token + position embeddings (K, B, T, C) of idx (K, B, T) at positions pos..: a
    gather whose backward is index_add_ (F.embedding's CUDA backward syncs with the host);
    member k's rows of the (K*V, C) table start at k*V."""
    K, B, T = idx.shape
    V, C = s.vocab_size, s.n_embed
    wte = w["transformer.wte.weight"]
    offsets = torch.arange(K, device=idx.device).view(K, 1, 1) * V
    x = wte.reshape(K * V, C).index_select(0, (idx + offsets).view(-1)).view(K, B, T, C)
    return x + w["transformer.wpe.weight"][:, None, pos : pos + T]


def layer(w: dict, i: int) -> dict:
    p = f"transformer.h.{i}."
    return {k.removeprefix(p): v for k, v in w.items() if k.startswith(p)}


def mlp(h, lw):
    h = F.gelu(linear(h, lw["mlp.c_fc.weight"], lw.get("mlp.c_fc.bias")))
    return linear(h, lw["mlp.c_proj.weight"], lw.get("mlp.c_proj.bias"))


def head(w, x):
    """The final LayerNorm and the tied lm_head: (K, N, C) -> (K, N, V)."""
    x = layer_norm(x, w["transformer.ln_f.weight"], w.get("transformer.ln_f.bias"))
    return torch.bmm(x, w["transformer.wte.weight"].transpose(1, 2))


def member_losses(
    w: dict[str, torch.Tensor],
    s: Shape,
    idx: torch.Tensor,
    targets: torch.Tensor,
    drops: Drops | None,
    counter: torch.Tensor | None,
) -> torch.Tensor:
    """Mean cross-entropy per member (K,) of idx (K, B, T) against targets (K, B, T)."""
    K, V = idx.size(0), s.vocab_size
    logits = member_logits(w, s, idx, drops, counter)
    loss = F.cross_entropy(logits.reshape(-1, V).float(), targets.reshape(-1), reduction="none")
    return loss.view(K, -1).mean(1)


def cached_logits(w, s: Shape, idx: torch.Tensor, cache: list, pos: int) -> torch.Tensor:
    """Inference for sampling: logits (K, V) of the last of the new tokens idx (K, T) at
    positions pos.., the earlier ones' keys and values in cache (per layer [k, v] of
    (K, nh, block_size, hs), written here): `GPT.forward_cached` for K members at once."""
    K, T = idx.shape
    C, nh = s.n_embed, s.n_head
    x = embed(w, s, idx.view(K, 1, T), pos).view(K, T, C)
    for i, (ck, cv) in enumerate(cache):
        lw = layer(w, i)
        h = layer_norm(x, lw["ln_1.weight"], lw.get("ln_1.bias"))
        qkv = linear(h, lw["attn.c_attn.weight"], lw.get("attn.c_attn.bias"))
        q, k, v = (t.view(K, T, nh, C // nh).transpose(1, 2) for t in qkv.split(C, dim=2))
        ck[:, :, pos : pos + T] = k
        cv[:, :, pos : pos + T] = v
        y = F.scaled_dot_product_attention(
            q, ck[:, :, : pos + T], cv[:, :, : pos + T], is_causal=T > 1
        )  # T > 1 only from pos 0
        y = y.transpose(1, 2).reshape(K, T, C)
        x = x + linear(y, lw["attn.c_proj.weight"], lw.get("attn.c_proj.bias"))
        x = x + mlp(layer_norm(x, lw["ln_2.weight"], lw.get("ln_2.bias")), lw)
    return head(w, x[:, -1:])[:, -1]
