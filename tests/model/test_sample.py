import pickle

import pytest
import torch

from model.config import MAX_NEW_TOKENS, MAX_SEED
from model.data import CharTokenizer
from model.errors import ConfigError
from model.gpt import GPT, GPTConfig
from model.sample import (
    CheckpointError,
    PromptError,
    SampleConfig,
    clamp_top_k,
    generate_text,
    load_checkpoint,
)

TOK = CharTokenizer.from_text("\nabcdefghij ")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return GPT(
        GPTConfig(
            vocab_size=TOK.vocab_size, block_size=8, n_layer=1, n_head=2, n_embed=16, dropout=0.0
        )
    )


def test_sample_config_validation():
    for kw, key in (
        ({"temperature": 0}, "temperature"),
        ({"top_k": -1}, "top_k"),
        ({"max_new_tokens": -5}, "max_new_tokens"),
    ):
        with pytest.raises(ConfigError) as e:
            SampleConfig(**kw)
        assert e.value.key == key
    with pytest.raises(ConfigError) as e:
        SampleConfig(temperature=-1.0)
    assert str(e.value) == "temperature must be a number > 0 (got -1.0)"


def test_clamp_top_k():
    assert clamp_top_k(500, 65) == (65, "top_k 500 is above the vocabulary size 65; using 65")
    assert clamp_top_k(65, 65) == (65, None)
    assert clamp_top_k(50, 65) == (50, None)
    assert clamp_top_k(0, 65) == (0, None)


def test_generate_text_with_top_k_above_vocab(model):
    cfg = SampleConfig(temperature=0.9, top_k=500, max_new_tokens=25)
    text, notices = generate_text(model, TOK, cfg, prompt="ab", seed=3)
    assert text.startswith("ab") and len(text) == 27
    assert notices == [
        f"top_k 500 is above the vocabulary size {TOK.vocab_size}; using {TOK.vocab_size}"
    ]
    assert not TOK.unknown(text)
    assert generate_text(model, TOK, cfg, prompt="ab", seed=3)[0] == text  # seeded
    off, notices = generate_text(model, TOK, SampleConfig(top_k=0, max_new_tokens=5))
    assert len(off) == 6 and notices == []


def test_sampling_bounds(model):
    """`sample --max-new-tokens 1000000000000` ran until killed and `--seed 1e20` ended in an
    OverflowError: both are refused with the stated bound, before any token is drawn."""
    with pytest.raises(ConfigError) as e:
        SampleConfig(max_new_tokens=1000000000000)
    assert e.value.key == "max_new_tokens"
    assert str(e.value) == (
        f"max_new_tokens must be an integer in [0, {MAX_NEW_TOKENS}] (got 1000000000000)"
    )
    assert SampleConfig(max_new_tokens=MAX_NEW_TOKENS).max_new_tokens == 100_000
    for seed in (99999999999999999999, -1, MAX_SEED + 1):
        with pytest.raises(ConfigError) as e:
            generate_text(model, TOK, SampleConfig(max_new_tokens=1), seed=seed)
        assert e.value.key == "seed"
        assert str(e.value) == f"seed must be an integer in [0, 4294967295] (got {seed})"
    text, _ = generate_text(model, TOK, SampleConfig(max_new_tokens=3), prompt="a", seed=MAX_SEED)
    assert len(text) == 4


def test_prompt_with_unknown_characters_refused(model):
    with pytest.raises(PromptError) as e:
        generate_text(model, TOK, SampleConfig(), prompt="a€béé")
    assert str(e.value) == "prompt has characters outside the vocabulary: 'é', '€'"


def test_foreign_checkpoints_refused(tmp_path, model):
    plain = tmp_path / "plain.pt"
    torch.save({"model": model.state_dict()}, plain)
    with pytest.raises(
        CheckpointError, match=r"^not a sweep checkpoint: .*plain\.pt \(format None"
    ):
        load_checkpoint(plain)
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps(ValueError("arbitrary object")))
    with pytest.raises(CheckpointError, match=r"^not a sweep checkpoint: .*evil\.pt \("):
        load_checkpoint(evil)
    obj = tmp_path / "obj.pt"
    torch.save({"format": "sweep-char-gpt/1", "cfg": GPTConfig()}, obj)  # not weights_only-safe
    with pytest.raises(CheckpointError, match=r"obj\.pt"):
        load_checkpoint(obj)
    with pytest.raises(CheckpointError, match=r"missing\.pt \(no such file\)"):
        load_checkpoint(tmp_path / "missing.pt")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match=r"notes\.txt"):
        load_checkpoint(text)
