"""Samples of several members at once: `model.sample.generate_text`'s rule (the default
prompt, top_k clamped to the vocabulary, a generator on the device seeded with the run's
seed) with one forward per token for all of them, keys and values cached
(`model.fused.model.cached_logits`) while the text fits in block_size, the last block_size
tokens recomputed past it, as `GPT.generate` does alone. Member k's text is the one its
solo model gives, up to float rounding of its logits."""

from __future__ import annotations

import torch

from model.config import SampleConfig
from model.data import CharTokenizer
from model.fused.model import Shape, cached_logits, member_logits
from model.fused.params import Layout
from model.gpt import sample_next
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
        nxt = [
            sample_next(logits[k : k + 1], cfg.temperature, top_k or None, g)
            for k, g in enumerate(gens)
        ]
        idx = torch.cat((idx, torch.cat(nxt)), dim=1)
    n = len(prompt)
    return [prompt + tokenizer.decode(row[n:]) for row in idx.tolist()]
