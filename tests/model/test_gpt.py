import math

import pytest
import torch

from model.errors import ConfigError
from model.gpt import GPT, GPTConfig

TINY = GPTConfig(vocab_size=11, block_size=16, n_layer=2, n_head=2, n_embed=32, dropout=0.0)


@pytest.mark.parametrize(
    ("kw", "key", "message"),
    [
        ({"dropout": 1.5}, "dropout", "dropout must be in [0, 1) (got 1.5)"),
        ({"dropout": -0.1}, "dropout", "dropout must be in [0, 1) (got -0.1)"),
        ({"n_embed": 250}, "n_embed", "n_embed (250) must be divisible by n_head (4)"),
        ({"n_layer": 0}, "n_layer", "n_layer must be an integer in [1, 1024] (got 0)"),
        (
            {"block_size": 2.5},
            "block_size",
            "block_size must be an integer in [1, 16777216] (got 2.5)",
        ),
    ],
)
def test_config_validation(kw, key, message):
    with pytest.raises(ConfigError) as e:
        GPTConfig(**kw)
    assert e.value.key == key
    assert str(e.value) == message == e.value.message


def test_shapes_loss_and_tying():
    torch.manual_seed(0)
    m = GPT(TINY)
    idx = torch.randint(11, (3, 16))
    logits, loss = m(idx, torch.randint(11, (3, 16)))
    assert logits.shape == (3, 16, 11)
    # fresh model with std-0.02 init predicts ~uniformly: loss near ln(vocab)
    assert abs(loss.item() - math.log(11)) < 0.1
    assert m.lm_head.weight is m.transformer.wte.weight
    total = sum(p.numel() for p in m.parameters())
    assert m.num_params(non_embedding=False) == total
    assert m.num_params() == total - 16 * 32
    _, none = m(idx)
    assert none is None


def test_causal_masking():
    torch.manual_seed(0)
    m = GPT(TINY).eval()
    idx = torch.randint(11, (1, 16))
    changed = idx.clone()
    changed[0, 10] = (idx[0, 10] + 1) % 11
    a, _ = m(idx)
    b, _ = m(changed)
    assert torch.equal(a[:, :10], b[:, :10])  # earlier positions do not see the future
    assert not torch.allclose(a[:, 10:], b[:, 10:])


def test_residual_projection_init():
    torch.manual_seed(0)
    m = GPT(GPTConfig(n_layer=8, n_embed=256))
    std = m.transformer.h[0].attn.c_proj.weight.std().item()
    assert abs(std - 0.02 / math.sqrt(16)) < 0.001
    assert abs(m.transformer.h[0].mlp.c_fc.weight.std().item() - 0.02) < 0.001


def test_generate_top_k_above_vocab_and_crop():
    torch.manual_seed(0)
    m = GPT(TINY).eval()
    g = torch.Generator().manual_seed(1)
    out = m.generate(
        torch.zeros(1, 1, dtype=torch.long), 40, temperature=1.0, top_k=500, generator=g
    )
    assert out.shape == (1, 41)  # longer than block_size: the context is cropped
    assert int(out.max()) < 11
    again = m.generate(
        torch.zeros(1, 1, dtype=torch.long),
        40,
        top_k=500,
        generator=torch.Generator().manual_seed(1),
    )
    assert torch.equal(out, again)


def full_context_generate(m, idx, n, temperature, top_k, generator):
    """The sampler before the key/value cache: the whole (cropped) context every token."""
    from model.gpt import sample_next

    with torch.no_grad():
        for _ in range(n):
            logits, _ = m(idx[:, -m.config.block_size :])
            idx = torch.cat((idx, sample_next(logits[:, -1], temperature, top_k, generator)), 1)
    return idx


@pytest.mark.parametrize("prompt_len", [1, 5, 20])  # 20: longer than block_size already
def test_kv_cache_samples_what_the_full_context_does(prompt_len):
    """Same text for a fixed seed, before and past block_size (16): logits differ by float
    rounding only, so a draw changes only if it falls within ~1e-7 of a boundary."""
    torch.manual_seed(0)
    m = GPT(TINY).eval()
    idx = torch.randint(11, (2, prompt_len))
    for seed in range(5):
        for top_k in (None, 3):
            new = m.generate(idx, 30, 0.8, top_k, torch.Generator().manual_seed(seed))
            old = full_context_generate(m, idx, 30, 0.8, top_k, torch.Generator().manual_seed(seed))
            assert torch.equal(new, old), (seed, top_k)


def test_top_k_1_is_greedy():
    torch.manual_seed(0)
    m = GPT(TINY).eval()
    idx = torch.randint(11, (1, 5))
    out = m.generate(idx, 1, top_k=1)
    logits, _ = m(idx)
    assert out[0, -1].item() == logits[0, -1].argmax().item()


def test_cpu_keep_mask_drops_p_and_keeps_the_mean():
    from model.gpt import keep_mask

    torch.manual_seed(0)
    like = torch.empty(1000, 1001)  # odd size: the last 64-bit word is cut
    m = keep_mask(like, 0.1)
    assert m.shape == like.shape and m.dtype == like.dtype
    dropped = (m == 0).float().mean().item()
    assert abs(dropped - 0.1) < 0.002
    assert m.unique().tolist() == [0.0, pytest.approx(65536 / (65536 - 6554))]
    assert abs(m.mean().item() - 1.0) < 0.005  # inverse scaling keeps the expectation
    torch.manual_seed(0)
    assert torch.equal(keep_mask(like, 0.1), m)  # a pure function of torch's seed
    assert keep_mask(torch.empty(3, 5, dtype=torch.bfloat16), 0.5).dtype == torch.bfloat16


def test_cpu_dropout_path_is_the_same_attention():
    """With a dropout too small to drop anything, the CPU training path (its own attention,
    masks and fused residual adds) computes what the SDPA eval path computes."""
    from model.gpt import keep_mask

    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=11, block_size=16, n_layer=2, n_head=2, n_embed=32, dropout=1e-9)
    m = GPT(cfg)
    assert bool((keep_mask(torch.empty(100), cfg.dropout) == 1).all())
    idx = torch.randint(11, (3, 16))
    train, _ = m.train()(idx)
    ref, _ = m.eval()(idx)
    assert torch.allclose(train, ref, atol=1e-5, rtol=1e-5)
    short, _ = m.train()(idx[:, :7])  # shorter than block_size: the causal bias is cropped
    assert torch.allclose(short, ref[:, :7], atol=1e-5, rtol=1e-5)


def test_checkpoint_keys_unchanged():
    """The causal bias is not saved: checkpoints of earlier versions still load strictly."""
    keys = set(GPT(TINY).state_dict())
    assert not any("causal_bias" in k for k in keys)
    assert "transformer.h.0.attn.c_attn.weight" in keys and "lm_head.weight" in keys
