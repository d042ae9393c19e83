"""Samples of several members at once: `model.sample.generate_text`'s rule (the default
prompt, top_k clamped to the vocabulary, a generator on the device seeded with the run's
seed) with one forward per token for all of them, keys and values cached
(`model.fused.model.cached_logits`) while the text fits in block_size, the last block_size
tokens recomputed past it, as `GPT.generate` does alone. Member k's text is the one its
solo model gives, up to float rounding of its logits."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from model.config import SampleConfig
from model.data import CharTokenizer
from model.fused.model import Shape, cached_logits, member_logits
from model.fused.params import Layout
from model.gpt import next_probs, sample_next
from model.sample import clamp_top_k, default_prompt


@torch.no_grad()
def sample_members(
    data: torch.Tensor,
    layout: Layout,
    shape: Shape,
    tokenizer: CharTokenizer,
    cfg: SampleConfig,
    seeds: list[int],
) -> list[str]:
    """One text per row of data (K', P): the members' weights, all sampled with cfg."""
    K, dev = data.size(0), data.device
    s = Shape(K, *[getattr(shape, f) for f in ("n_layer", "n_head", "n_embed")],
              shape.vocab_size, shape.block_size, shape.bias, False)  # fmt: skip
    w = layout.views(data.detach())
    prompt = default_prompt(tokenizer)
    top_k, _ = clamp_top_k(cfg.top_k, tokenizer.vocab_size)
    idx = torch.tensor([tokenizer.encode(prompt)] * K, dtype=torch.long, device=dev)
    gens = [torch.Generator(device=dev).manual_seed(seed) for seed in seeds]
    hs, bs = s.n_embed // s.n_head, s.block_size
    cache = [
        [data.new_empty(K, s.n_head, bs, hs), data.new_empty(K, s.n_head, bs, hs)]
        for _ in range(s.n_layer)
    ]
    done = 0
    for _ in range(cfg.max_new_tokens):
        if idx.size(1) > bs:
            logits = member_logits(w, s, idx[:, None, -bs:], None, None)[:, -1]
        else:
            logits = cached_logits(w, s, idx[:, done:], cache, done)
            done = idx.size(1)
        probs = next_probs(logits, cfg.temperature, top_k or None)  # row by row, as alone
        nxt = [torch.multinomial(probs[k : k + 1], 1, generator=g) for k, g in enumerate(gens)]
        idx = torch.cat((idx, torch.cat(nxt)), dim=1)
    n = len(prompt)
    return [prompt + tokenizer.decode(row[n:]) for row in idx.tolist()]


class Decoder:
    """Next-token logits of all K members, one token a call, from static buffers (the token,
    its position as a device tensor, full-length key/value caches read through a mask), so
    that a call can be captured in a CUDA graph (capture=True): a sampled token costs one
    graph launch plus its draw, not a hundred kernel launches. Past block_size the last
    block_size tokens are recomputed (a second graph), as `GPT.generate` does. Built once per
    group: the captured weights are views of the live parameters."""

    def __init__(
        self, data: torch.Tensor, layout: Layout, shape: Shape, capture: bool, notes: list
    ):
        from model.fused.steps import Replayed

        K, dev = data.size(0), data.device
        self.s = Shape(K, shape.n_layer, shape.n_head, shape.n_embed, shape.vocab_size,
                       shape.block_size, shape.bias, False)  # fmt: skip
        self.w = layout.views(data.detach())
        bs, hs = self.s.block_size, self.s.n_embed // self.s.n_head
        self.cache = [
            [data.new_zeros(K, self.s.n_head, bs, hs) for _ in "kv"] for _ in range(self.s.n_layer)
        ]
        self.tok = torch.zeros(K, 1, dtype=torch.long, device=dev)
        self.win = torch.zeros(K, bs, dtype=torch.long, device=dev)
        self.pos = torch.zeros((), dtype=torch.long, device=dev)
        self.positions = torch.arange(bs, device=dev)
        self.offsets = torch.arange(K, device=dev).view(K, 1) * self.s.vocab_size
        self.logits = data.new_zeros(K, self.s.vocab_size)
        self.cached = Replayed(self.cached_step, capture, notes, None)
        self.window = Replayed(self.window_step, capture, notes, None)

    @torch.no_grad()
    def cached_step(self) -> None:
        """The token in `tok` at position `pos`: its logits, its keys and values cached."""
        from model.fused.model import head, layer, layer_norm, linear, mlp

        s, w, K = self.s, self.w, self.s.members
        C, nh, bs = s.n_embed, s.n_head, s.block_size
        at = self.pos.view(1)
        x = (
            w["transformer.wte.weight"]
            .reshape(-1, C)
            .index_select(0, (self.tok + self.offsets).view(-1))
        )
        x = (x.view(K, 1, C) + w["transformer.wpe.weight"].index_select(1, at)).view(K, 1, C)
        seen = (self.positions <= self.pos).view(1, 1, 1, bs)
        for i, (ck, cv) in enumerate(self.cache):
            lw = layer(w, i)
            h = layer_norm(x, lw["ln_1.weight"], lw.get("ln_1.bias"))
            qkv = linear(h, lw["attn.c_attn.weight"], lw.get("attn.c_attn.bias"))
            q, k, v = (t.view(K, 1, nh, C // nh).transpose(1, 2) for t in qkv.split(C, dim=2))
            ck.index_copy_(2, at, k)
            cv.index_copy_(2, at, v)
            y = F.scaled_dot_product_attention(q, ck, cv, attn_mask=seen)
            x = x + linear(
                y.transpose(1, 2).reshape(K, 1, C),
                lw["attn.c_proj.weight"],
                lw.get("attn.c_proj.bias"),
            )
            x = x + mlp(layer_norm(x, lw["ln_2.weight"], lw.get("ln_2.bias")), lw)
        self.logits.copy_(head(w, x)[:, -1])
        self.pos.add_(1)

    @torch.no_grad()
    def window_step(self) -> None:
        K, bs = self.s.members, self.s.block_size
        self.logits.copy_(member_logits(self.w, self.s, self.win.view(K, 1, bs), None, None)[:, -1])

    @torch.no_grad()
    def generate(
        self, tokenizer: CharTokenizer, cfgs: list[SampleConfig | None], seeds: list[int]
    ) -> list[str | None]:
        """Member k's sample with cfgs[k] (None: not sampled), generate_text's rule."""
        K, bs, dev = self.s.members, self.s.block_size, self.tok.device
        prompt = default_prompt(tokenizer)
        P = len(prompt)
        n = max((c.max_new_tokens for c in cfgs if c is not None), default=0)
        out = torch.zeros(K, P + n, dtype=torch.long, device=dev)
        out[:, :P] = torch.tensor(tokenizer.encode(prompt), device=dev)
        gens = [
            None if c is None else torch.Generator(device=dev).manual_seed(sd)
            for c, sd in zip(cfgs, seeds, strict=True)
        ]
        top = [
            None if c is None else clamp_top_k(c.top_k, tokenizer.vocab_size)[0] or None
            for c in cfgs
        ]
        for i in range(n):
            L = P + i  # tokens so far; predict token L
            if bs < L:
                self.win.copy_(out[:, L - bs : L])
                self.window()
            elif i == 0:
                self.logits.copy_(cached_logits(self.w, self.s, out[:, :P], self.cache, 0))
                self.pos.fill_(P)
            else:
                self.tok.copy_(out[:, L - 1 : L])
                self.cached()
            for k, c in enumerate(cfgs):
                if c is not None and i < c.max_new_tokens:
                    out[k, L] = sample_next(self.logits[k : k + 1], c.temperature, top[k], gens[k])[
                        0, 0
                    ]
        rows = out.tolist()
        return [
            None if c is None else prompt + tokenizer.decode(r[P : P + c.max_new_tokens])
            for c, r in zip(cfgs, rows, strict=True)
        ]
