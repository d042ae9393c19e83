"""A small GPT language model, nanoGPT style. No I/O, no printing."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
from torch.nn import functional as F

from model.config import GPTConfig
from model.masks import drop_count

# Dropout on the CPU. nn.Dropout draws a float per element (aten::bernoulli_, 7 ns/element
# here, 14-21% of a CPU-safe step) and pushes SDPA off its fused kernel. Here a keep-mask
# is cut from 64-bit random words, four 16-bit draws per word (~1.5 ns/element), kept with
# probability 1 - round(p * 65536) / 65536 (p = 0.1 is applied as 0.100006) and scaled by
# the inverse of that, so the expectation is exact. Same distribution as nn.Dropout, a
# different random stream. A model trained by the Trainer draws from its run's own stream
# (`GPT.masks`, a model.masks.GeneratorMasks seeded by the run's seed), the stream a fused
# group gives that run as a member; without one (a GPT used directly) from torch's global
# generator. Other devices keep F.dropout (fused and cheap on CUDA).
FAST_CPU_DROPOUT = True


def keep_mask(like: torch.Tensor, p: float, masks=None) -> torch.Tensor:
    """1/(1-p') where kept, 0 where dropped, shaped and typed like `like` (p' = p to 1/65536).
    From `masks` (a GeneratorMasks) when given, else from torch's global generator."""
    if masks is not None:
        return masks.keep(like, p)
    drop = drop_count(p)
    words = torch.empty((like.numel() + 3) // 4, dtype=torch.int64, device=like.device)
    bits = words.random_(-(2**63), None).view(torch.int16)[: like.numel()].view(like.shape)
    scale = torch.full((), 65536 / (65536 - drop), dtype=like.dtype, device=like.device)
    return torch.where(bits >= drop - 32768, scale, torch.zeros((), dtype=like.dtype))


def cpu_fast(x: torch.Tensor, p: float, training: bool) -> bool:
    return training and p > 0 and FAST_CPU_DROPOUT and x.device.type == "cpu"


def dropout(x: torch.Tensor, p: float, training: bool, masks=None) -> torch.Tensor:
    if cpu_fast(x, p, training):
        return x * keep_mask(x, p, masks)
    return F.dropout(x, p, training)


def add_dropout(x: torch.Tensor, h: torch.Tensor, p: float, training: bool, masks=None):
    """x + dropout(h), the residual add and the mask in one pass on the CPU."""
    if cpu_fast(h, p, training):
        return torch.addcmul(x, h, keep_mask(h, p, masks))
    return x + F.dropout(h, p, training)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_attn = nn.Linear(config.n_embed, 3 * config.n_embed, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embed, config.n_embed, bias=config.bias)
        self.n_head = config.n_head
        self.n_embed = config.n_embed
        self.dropout = config.dropout
        # -inf above the diagonal; not saved, so checkpoints are unchanged
        bias = torch.full((config.block_size, config.block_size), float("-inf")).triu(1)
        self.register_buffer("causal_bias", bias, persistent=False)

    def qkv(self, x):
        """q, k, v as (B, nh, T, hs)."""
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embed, dim=2)
        return [t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v)]

    def forward(self, x, masks=None):
        """The attention output before the residual dropout (Block applies it)."""
        B, T, C = x.size()
        hs = C // self.n_head
        q, k, v = self.qkv(x)
        if cpu_fast(x, self.dropout, self.training):
            # SDPA with dropout runs its unfused math path on the CPU; this is the same
            # math with the cheap mask, scale and causal mask folded into one baddbmm
            att = torch.baddbmm(
                self.causal_bias[:T, :T].to(q.dtype).expand(B * self.n_head, T, T),
                q.reshape(B * self.n_head, T, hs),
                k.reshape(B * self.n_head, T, hs).transpose(1, 2),
                alpha=1.0 / math.sqrt(hs),
            )
            att = torch.softmax(att, dim=-1)
            att = att * keep_mask(att, self.dropout, masks)
            y = torch.bmm(att, v.reshape(B * self.n_head, T, hs)).view(B, self.n_head, T, hs)
        else:
            y = F.scaled_dot_product_attention(
                q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True
            )
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)

    def forward_cached(self, x, cache: list, pos: int):
        """Inference on new tokens at positions pos.. with the keys and values of the earlier
        ones in cache ([k, v] of (B, nh, block_size, hs), written here)."""
        B, T, C = x.size()
        q, k, v = self.qkv(x)
        cache[0][:, :, pos : pos + T] = k
        cache[1][:, :, pos : pos + T] = v
        k, v = cache[0][:, :, : pos + T], cache[1][:, :, : pos + T]
        y = F.scaled_dot_product_attention(q, k, v, is_causal=T > 1)  # T > 1: pos is 0
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embed, 4 * config.n_embed, bias=config.bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * config.n_embed, config.n_embed, bias=config.bias)

    def forward(self, x):
        """The MLP output before the residual dropout (Block applies it)."""
        return self.c_proj(self.gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embed, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embed, bias=config.bias)
        self.mlp = MLP(config)
        self.dropout = config.dropout

    def forward(self, x, masks=None):
        p, tr = self.dropout, self.training
        x = add_dropout(x, self.attn(self.ln_1(x), masks), p, tr, masks)
        return add_dropout(x, self.mlp(self.ln_2(x)), p, tr, masks)

    def forward_cached(self, x, cache: list, pos: int):
        x = x + self.attn.forward_cached(self.ln_1(x), cache, pos)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.vocab_size, config.n_embed),
                wpe=nn.Embedding(config.block_size, config.n_embed),
                h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
                ln_f=nn.LayerNorm(config.n_embed, bias=config.bias),
            )
        )
        self.lm_head = nn.Linear(config.n_embed, config.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # weight tying
        self.masks = None  # the run's dropout stream (model.masks.GeneratorMasks), or torch's
        self.apply(self._init_weights)
        # scaled init of the residual projections, per GPT-2
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self, non_embedding: bool = True) -> int:
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.transformer.wpe.weight.numel()
        return n

    def forward(self, idx, targets=None):
        t = idx.size(1)
        if t > self.config.block_size:
            raise ValueError(
                f"sequence length {t} is longer than block_size {self.config.block_size}"
            )
        pos = torch.arange(t, dtype=torch.long, device=idx.device)
        x = dropout(
            self.transformer.wte(idx) + self.transformer.wpe(pos),
            self.config.dropout,
            self.training,
            self.masks,
        )
        for block in self.transformer.h:
            x = block(x, self.masks)
        logits = self.lm_head(self.transformer.ln_f(x))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)).float(), targets.reshape(-1))
        return logits, loss

    def forward_cached(self, idx, cache: list, pos: int):
        """Logits of the last of the new tokens idx (B, T) at positions pos..pos+T-1, the
        earlier ones' keys and values in cache (from `new_cache`), inference only."""
        x = self.transformer.wte(idx) + self.transformer.wpe.weight[pos : pos + idx.size(1)]
        for block, c in zip(self.transformer.h, cache, strict=True):
            x = block.forward_cached(x, c, pos)
        return self.lm_head(self.transformer.ln_f(x[:, -1:]))[:, -1]

    def new_cache(self, batch: int, like: torch.Tensor) -> list:
        c = self.config
        shape = (batch, c.n_head, c.block_size, c.n_embed // c.n_head)
        return [[like.new_empty(shape), like.new_empty(shape)] for _ in range(c.n_layer)]

    @torch.no_grad()
    def generate(
        self,
        idx,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
    ):
        """Append max_new_tokens sampled tokens to idx (B, T); top_k None or 0 = off.

        Keys and values are cached while the text fits in block_size (one token's forward
        per new token); past it, each token is predicted from the last block_size tokens
        recomputed (their positions shift), as without a cache. Same samples as computing
        the whole context each time, up to float rounding (see tests/model/test_gpt.py)."""
        cache, done = None, 0  # tokens of idx whose keys and values are in cache
        for _ in range(max_new_tokens):
            if idx.size(1) > self.config.block_size:
                logits, _ = self(idx[:, -self.config.block_size :])
                logits = logits[:, -1, :]
            else:
                if cache is None:
                    cache = self.new_cache(idx.size(0), self.lm_head.weight)
                logits = self.forward_cached(idx[:, done:], cache, done)
                done = idx.size(1)
            idx_next = sample_next(logits, temperature, top_k, generator)
            idx = torch.cat((idx, idx_next), dim=1)
        return idx


def next_probs(logits, temperature: float, top_k: int | None):
    """Next-token probabilities per row of logits (B, V): temperature, then top_k."""
    logits = logits.float() / temperature
    if top_k:
        v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
        logits[logits < v[:, [-1]]] = -float("inf")
    return F.softmax(logits, dim=-1)


def sample_next(logits, temperature: float, top_k: int | None, generator):
    """One token per row of logits (B, V): temperature, top_k, then a seeded draw."""
    probs = next_probs(logits, temperature, top_k)
    return torch.multinomial(probs, num_samples=1, generator=generator)
