"""Model sizes are refused by their parameter count and memory before anything allocates;
the last tests run the real `sweep baseline` in its own process, with an address-space limit
so that a regression ends in MemoryError there instead of taking the machine's memory."""

from __future__ import annotations

import resource
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from model.config import (
    MAX_BATCH,
    MAX_BLOCK,
    MAX_EMBED,
    MAX_LAYERS,
    MAX_VOCAB,
    GPTConfig,
    SampleConfig,
    TrainConfig,
)
from model.data import Dataset
from model.errors import ConfigError
from model.footprint import GiB, available, check_fits, count_params, estimate
from model.gpt import GPT
from model.train import Trainer


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"bias": False},
        {"n_layer": 1, "n_head": 2, "n_embed": 32, "block_size": 16, "vocab_size": 7},
        {"n_layer": 3, "n_head": 6, "n_embed": 96, "block_size": 200, "vocab_size": 1000},
    ],
)
def test_count_params_matches_the_model(kw):
    cfg = GPTConfig(**kw)
    assert count_params(cfg) == sum(p.numel() for p in GPT(cfg).parameters())


def saved_for_backward(cfg: GPTConfig, batch: int, amp: bool) -> int:
    """Bytes autograd really keeps for the backward pass of one forward on the CPU (each
    storage once; parameters and buffers left out: they are counted as weights)."""
    torch.manual_seed(0)
    model = GPT(cfg).train()
    x = torch.randint(cfg.vocab_size, (batch, cfg.block_size))
    storages: dict[int, int] = {}

    def pack(t):
        s = t.untyped_storage()
        storages[s.data_ptr()] = s.nbytes()
        return t

    owned = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast:
        model(x, x)
    return sum(n for ptr, n in storages.items() if ptr not in owned)


@pytest.mark.parametrize("amp", [False, True])
@pytest.mark.parametrize(
    "kw",
    [
        {"n_layer": 2, "n_head": 4, "n_embed": 128, "block_size": 64, "dropout": 0.0},
        {"n_layer": 2, "n_head": 4, "n_embed": 128, "block_size": 64, "dropout": 0.1},
        {"n_layer": 3, "n_head": 8, "n_embed": 256, "block_size": 128, "dropout": 0.1},
        {"n_layer": 1, "n_head": 2, "n_embed": 64, "block_size": 32, "vocab_size": 1000},
    ],
)
def test_activations_are_a_close_lower_bound(kw, amp):
    """The estimate never exceeds what autograd saves (so a run that fits is never refused),
    and is not far below it (so the check means something)."""
    cfg = GPTConfig(**kw)
    train = TrainConfig(batch_size=4, grad_accum_steps=2, eval_iters=1)  # micro-batch of 2
    est = estimate(cfg, train, "cpu", amp)
    saved = saved_for_backward(cfg, 2, amp)
    evaluation = 4 * cfg.block_size * max(8 * cfg.n_embed, cfg.vocab_size) * 4
    assert est.activations == max(evaluation, est.activations)
    training_part = est.activations if est.activations > evaluation else None
    if training_part is not None:
        assert training_part <= saved <= 2.2 * training_part, (training_part, saved)
    assert est.weights == 16 * count_params(cfg)
    assert est.buffers == cfg.n_layer * cfg.block_size**2 * 4
    assert est.buffers == sum(b.numel() * b.element_size() for b in GPT(cfg).buffers())


def test_refused_with_the_keys_and_the_numbers():
    gpt = GPTConfig(n_layer=8, n_head=8, n_embed=512, block_size=256)
    train = TrainConfig(batch_size=64)
    fp = estimate(gpt, train, "cpu")
    P = count_params(gpt)
    assert fp.params == P == 65 * 512 + 256 * 512 + 8 * (12 * 512**2 + 13 * 512) + 2 * 512
    # by hand: fp32 activations of a 64 x 256 micro-batch, 16 C a layer and token, plus the
    # CPU dropout path's 2 C + 3 H T, plus 2 C + V + C outside the layers
    per_token = 8 * (16 * 512 + 2 * 512 + 3 * 8 * 256) + 2 * 512 + 65 + 512
    assert fp.activations == 64 * 256 * per_token * 4
    assert fp.total == 16 * P + 8 * 256 * 256 * 4 + 64 * 256 * per_token * 4
    assert check_fits(gpt, train, "cpu", free=(fp.total, "test")) == fp  # exactly fits
    with pytest.raises(ConfigError) as e:
        check_fits(gpt, train, "cpu", free=(fp.total - 1, "available RAM"))
    assert e.value.key == "batch_size"  # activations dominate here
    msg = str(e.value)
    assert msg.startswith(
        "the model is too big for cpu: n_layer=8, n_embed=512, block_size=256, "
        f"batch_size=64, grad_accum_steps=1 give {P:,} parameters and need at least "
        f"{fp.total / GiB:,.1f} GiB to train"
    )
    assert f"than the {(fp.total - 1) / GiB:,.1f} GiB of available RAM" in msg
    assert msg.endswith("or batch_size (or raise grad_accum_steps)")
    # the weights dominate: n_embed is the key named
    big = GPTConfig(n_layer=64, n_head=16, n_embed=4096, block_size=256)
    with pytest.raises(ConfigError) as e:
        check_fits(big, TrainConfig(batch_size=1), "cpu", free=(GiB, "available RAM"))
    assert e.value.key == "n_embed" and f"{count_params(big):,} parameters" in str(e.value)


def test_available_memory_is_what_the_machine_says():
    have, what = available("cpu")
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    total = next(int(ln.split()[1]) * 1024 for ln in meminfo if ln.startswith("MemTotal:"))
    assert 0 < have <= total and what in (
        "available RAM",
        "memory left under this process's cgroup limit",
    )


def test_trainer_refuses_before_allocating(small_corpus):
    """A model the machine cannot hold is refused when the Trainer is made (runner.check makes
    one before any run is recorded), in well under a second, with nothing allocated."""
    ds = Dataset(small_corpus)
    gpt = GPTConfig(n_layer=MAX_LAYERS, n_head=64, n_embed=MAX_EMBED, block_size=256)
    t0 = time.perf_counter()
    with pytest.raises(ConfigError) as e:
        Trainer(gpt, TrainConfig(device="cpu"), ds, out_dir=".")
    took = time.perf_counter() - t0
    assert e.value.key == "n_embed" and "is too big for cpu" in str(e.value)
    assert took < 5, took  # it did not build the model (that would not end at all)
    # a smoke-sized model passes and records its footprint
    t = Trainer(
        GPTConfig(n_layer=1, n_head=2, n_embed=32, block_size=32), TrainConfig(), ds, out_dir="."
    )
    assert 0 < t.footprint.total < 2**30


@pytest.mark.parametrize(
    ("section", "key", "value", "bound"),
    [
        (GPTConfig, "n_layer", 99999999999999999999, "[1, 1024]"),
        (GPTConfig, "n_embed", 2**16 + 2, "[1, 65536]"),
        (GPTConfig, "block_size", 2**40, "[1, 16777216]"),
        (GPTConfig, "vocab_size", 2**31, "[1, 1114112]"),
        (TrainConfig, "batch_size", 10**12, "[1, 1048576]"),
        (TrainConfig, "max_steps", 10**20, "[1, 1000000000]"),
        (TrainConfig, "seed", 99999999999999999999, "[0, 4294967295]"),
        (SampleConfig, "max_new_tokens", 1000000000000, "[0, 100000]"),
    ],
)
def test_integers_have_a_stated_bound(section, key, value, bound):
    with pytest.raises(ConfigError) as e:
        section(**{key: value})
    assert e.value.key == key
    assert str(e.value) == f"{key} must be an integer in {bound} (got {value})"
    high = int(bound.strip("[]").split(", ")[1])
    assert getattr(section(**{key: high}), key) == high  # the bound itself is allowed


def test_largest_config_within_the_bounds_is_refused_by_arithmetic():
    """Every key at its bound: the footprint is exact integer arithmetic (no tensor, no int64
    to overflow), and it is refused before torch sees a shape."""
    worst = GPTConfig(
        n_layer=MAX_LAYERS, n_head=1, n_embed=MAX_EMBED, block_size=MAX_BLOCK, vocab_size=MAX_VOCAB
    )
    train = TrainConfig(batch_size=MAX_BATCH)
    fp = estimate(worst, train)
    assert fp.buffers == MAX_LAYERS * MAX_BLOCK**2 * 4  # 1 EiB of causal masks alone
    with pytest.raises(ConfigError, match=r"is too big for cpu: n_layer=1024, n_embed=65536"):
        check_fits(worst, train, "cpu")


LIMIT = 6 * 2**30  # bytes of address space the child may map (torch alone maps ~1.5 GiB)


def limited():
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT))


def sweep_limited(tmp_path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            [sys.executable, "-m", "orchestrator.cli", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=timeout,
            preexec_fn=limited,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"sweep {' '.join(args)} was still running after {timeout} s")


def runs_recorded(tmp_path) -> int:
    db = tmp_path / "mlflow.db"
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        return conn.execute("select count(*) from runs").fetchone()[0]


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            "n_layer=99999999999999999999",
            "error: --set n_layer=99999999999999999999: n_layer must be an integer in [1, 1024] "
            "(got 99999999999999999999)",
        ),
        (
            "n_embed=65536",  # within the bounds, 103 G parameters: no machine here holds it
            "error: n_embed: the model is too big for cpu: n_layer=2, n_embed=65536, "
            "block_size=32, batch_size=16, grad_accum_steps=1 give 103,087,407,104 parameters",
        ),
    ],
)
def test_baseline_refuses_sizes_before_training(tmp_path, override, expected):
    r = sweep_limited(tmp_path, "baseline", "--profile", "smoke", "--set", override)
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    assert "Traceback" not in out and "MemoryError" not in out
    errors = [ln for ln in out.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith(expected), out
    assert runs_recorded(tmp_path) == 0
