import math
import os
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from recording import Recorder, cuda

from model.config import TrainConfig
from model.data import Dataset
from model.errors import ConfigError
from model.gpt import GPTConfig
from model.sample import SampleConfig, load_checkpoint
from model.train import (
    DivergenceError,
    Trainer,
    TrainerHooks,
    cpu_has_native_bf16,
    lr_factor,
    resolve_amp,
    resolve_device,
    resolve_threads,
)

TINY = GPTConfig(block_size=16, n_layer=1, n_head=2, n_embed=32, dropout=0.0)
FAST = TrainConfig(
    max_steps=12,
    batch_size=8,
    lr=3e-3,
    warmup_steps=2,
    eval_every=4,
    eval_iters=2,
    device="cpu",
    amp="off",
)


@pytest.fixture(scope="module")
def ds(small_corpus):
    return Dataset(small_corpus)


def run(ds, tmp_path, gpt=TINY, hooks=None, **kw):
    trainer = Trainer(gpt, replace(FAST, **kw), ds, out_dir=tmp_path, hooks=hooks)
    return trainer, trainer.run()


@pytest.mark.parametrize(
    ("kw", "key", "message"),
    [
        (
            {"batch_size": 64, "grad_accum_steps": 3},
            "grad_accum_steps",
            "batch_size (64) must be divisible by grad_accum_steps (3)",
        ),
        ({"lr": 0}, "lr", "lr must be a number > 0 (got 0)"),
        ({"lr": float("nan")}, "lr", "lr must be a number > 0 (got nan)"),
        ({"max_steps": 0}, "max_steps", "max_steps must be an integer in [1, 1000000000] (got 0)"),
        (
            {"warmup_steps": -1},
            "warmup_steps",
            "warmup_steps must be an integer in [0, 1000000000] (got -1)",
        ),
        ({"beta2": 1.0}, "beta2", "beta2 must be in [0, 1) (got 1.0)"),
        ({"grad_clip": -1.0}, "grad_clip", "grad_clip must be >= 0, 0 = off (got -1.0)"),
        (
            {"schedule": "linear"},
            "schedule",
            "schedule must be one of constant, cosine (got 'linear')",
        ),
        ({"amp": "fp8"}, "amp", "amp must be one of auto, off, bf16, fp16 (got 'fp8')"),
        ({"device": "tpu"}, "device", "device must be one of auto, cpu, cuda, mps (got 'tpu')"),
        (
            {"save_best": "a/b.pt"},
            "save_best",
            "save_best must be a plain file name (got 'a/b.pt')",
        ),
    ],
)
def test_config_validation(kw, key, message):
    with pytest.raises(ConfigError) as e:
        TrainConfig(**kw)
    assert (e.value.key, str(e.value)) == (key, message)


def test_lr_factor_constant_and_cosine():
    c = TrainConfig(max_steps=1000, warmup_steps=200, schedule="constant")
    assert lr_factor(0, c) == pytest.approx(1 / 200)
    assert lr_factor(199, c) == 1.0  # end of warmup
    assert lr_factor(600, c) == 1.0 and lr_factor(999, c) == 1.0
    k = replace(c, schedule="cosine")
    assert lr_factor(0, k) == pytest.approx(0.005)
    assert lr_factor(99, k) == pytest.approx(0.5)
    assert lr_factor(200, k) == pytest.approx(1.0)  # cosine starts at the top
    assert lr_factor(600, k) == pytest.approx(0.55)  # middle: halfway to min_lr_ratio
    assert lr_factor(1000, k) == pytest.approx(0.1)  # end: min_lr_ratio
    assert lr_factor(999, k) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi * 799 / 800)))
    assert lr_factor(0, replace(k, warmup_steps=0)) == pytest.approx(1.0)


def test_resolve_device_and_amp():
    assert resolve_device("cpu") == "cpu"
    assert resolve_amp("auto", "cpu") is (torch.bfloat16 if cpu_has_native_bf16() else None)
    assert resolve_amp("auto", "mps") is None
    assert resolve_amp("off", "cpu") is None
    assert resolve_amp("bf16", "cpu") is torch.bfloat16
    with pytest.raises(ConfigError) as e:
        resolve_amp("fp16", "cpu")
    assert e.value.key == "amp"
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="cuda is not available") as e:
            resolve_device("cuda")
        assert e.value.key == "device"


def test_loss_falls_in_a_smoke_run(ds, tmp_path):
    """The smoke profile, as shipped, learns: val loss ends far below the first loss."""
    profile = tomllib.loads((Path(__file__).parents[2] / "experiments/smoke.toml").read_text())
    h = Recorder()
    t = Trainer(
        GPTConfig(**profile["model"]),
        TrainConfig(**profile["train"]),
        ds,
        out_dir=tmp_path,
        hooks=h,
    )
    s = t.run()
    first = h.steps[0][1]
    assert first == pytest.approx(math.log(ds.tokenizer.vocab_size), abs=0.3)
    assert s["final_val_loss"] < first - 1.0
    assert [st for st, _ in h.evals] == [20, 40, 60]
    assert [st for st, _ in h.steps] == list(range(1, 61))  # CPU checks every step
    assert s["steps"] == 60 and s["best_step"] in (20, 40, 60)
    assert s["best_val_ppl"] == pytest.approx(math.exp(s["best_val_loss"]))
    assert s["params"] > 0 and s["tokens_per_s"] > 0 and s["peak_mem_mb"] > 0
    m = h.evals[-1][1]
    assert set(m) == {"train_loss", "val_loss", "val_ppl", "lr", "tokens_per_s"}
    assert m["lr"] == pytest.approx(profile["train"]["lr"])


def test_last_step_evaluated_once(ds, tmp_path):
    h = Recorder()
    run(ds, tmp_path, hooks=h, max_steps=10, eval_every=4)
    assert [st for st, _ in h.evals] == [4, 8, 10]
    h = Recorder()
    run(ds, tmp_path, hooks=h, max_steps=8, eval_every=4)
    assert [st for st, _ in h.evals] == [4, 8]


def test_grad_accumulation_matches_full_batch(ds, tmp_path):
    a, _ = run(ds, tmp_path / "a", max_steps=1, batch_size=16, grad_accum_steps=1)
    b, _ = run(ds, tmp_path / "b", max_steps=1, batch_size=16, grad_accum_steps=4)
    pa, pb = dict(a.model.named_parameters()), dict(b.model.named_parameters())
    init = Trainer(TINY, FAST, ds, out_dir=tmp_path)
    torch.manual_seed(FAST.seed)
    from model.gpt import GPT

    p0 = dict(GPT(init.gpt_config).named_parameters())
    moved = 0
    for name in pa:
        assert torch.allclose(pa[name], pb[name], atol=1e-6, rtol=1e-5), name
        moved += not torch.equal(pa[name], p0[name])
    assert moved == len(pa)  # the step really changed every parameter


def test_best_checkpoint_only_on_improvement(ds, tmp_path):
    class Capture(Recorder):
        def on_checkpoint(self, path, metrics):
            super().on_checkpoint(path, metrics)
            with torch.no_grad():
                self.logits = trainer.model(probe)[0].clone()

    probe = torch.arange(16).remainder(ds.tokenizer.vocab_size)[None]
    h = Capture()
    trainer = Trainer(
        TINY,
        replace(FAST, max_steps=24, lr=3e-2, warmup_steps=0, eval_every=2),
        ds,
        out_dir=tmp_path,
        hooks=h,
    )
    s = trainer.run()
    vals = [m["val_loss"] for _, m in h.evals]
    expected, best = [], float("inf")
    for v in vals:
        if v < best:
            expected.append(v)
            best = v
    assert [v for _, v in h.checkpoints] == expected
    assert len(expected) < len(vals)  # this run has evals that did not improve
    assert s["best_val_loss"] == expected[-1]
    assert all(p == tmp_path / "best.pt" for p, _ in h.checkpoints)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt"]  # no temp files left
    ck = load_checkpoint(tmp_path / "best.pt")
    assert ck.meta["step"] == s["best_step"] and ck.meta["val_loss"] == s["best_val_loss"]
    assert ck.meta["dataset"] == ds.identity()
    assert ck.meta["train_config"]["lr"] == 3e-2
    assert ck.meta["model_config"]["vocab_size"] == ds.tokenizer.vocab_size
    assert ck.tokenizer.chars == ds.tokenizer.chars
    with torch.no_grad():
        assert torch.equal(ck.model(probe)[0], h.logits)


def test_samples_at_each_eval(ds, tmp_path):
    h = Recorder()
    t = Trainer(
        TINY,
        replace(FAST, max_steps=8),
        ds,
        out_dir=tmp_path,
        hooks=h,
        sample_config=SampleConfig(max_new_tokens=30),
    )
    t.run()
    assert [st for st, _ in h.samples] == [4, 8]
    assert all(len(text) == 31 and text[0] == "\n" for _, text in h.samples)
    assert not ds.tokenizer.unknown("".join(text for _, text in h.samples))


def test_deterministic_on_cpu(ds, tmp_path):
    keys = ("best_val_loss", "final_train_loss", "final_val_loss", "best_step")
    _, a = run(ds, tmp_path / "a")
    _, b = run(ds, tmp_path / "b")
    _, c = run(ds, tmp_path / "c", seed=7)
    assert [a[k] for k in keys] == [b[k] for k in keys]
    assert a["final_train_loss"] != c["final_train_loss"]


def test_cpu_bf16_runs(ds, tmp_path):
    _, s = run(ds, tmp_path, amp="bf16", max_steps=8)
    assert math.isfinite(s["final_val_loss"]) and math.isfinite(s["final_train_loss"])
    assert s["final_val_loss"] < math.log(ds.tokenizer.vocab_size)


def test_divergence_names_the_step(ds, tmp_path):
    h = Recorder()
    with pytest.raises(DivergenceError) as e:
        run(ds, tmp_path, hooks=h, lr=1e6, grad_clip=0.0, warmup_steps=0)
    assert not math.isfinite(e.value.loss)
    assert str(e.value) == f"non-finite loss ({e.value.loss}) at step {e.value.step}"
    # every step before it was checked and reported finite
    assert [st for st, _ in h.steps] == list(range(1, e.value.step))
    assert all(math.isfinite(v) for _, v in h.steps)


def test_hook_exception_stops_the_run(ds, tmp_path):
    class Stop(Exception):
        pass

    class Pruner(TrainerHooks):
        def on_eval(self, step, metrics):
            raise Stop(step)

    with pytest.raises(Stop) as e:
        run(ds, tmp_path, hooks=Pruner())
    assert e.value.args == (4,)


def test_block_size_checked_against_dataset(ds, tmp_path):
    with pytest.raises(ConfigError) as e:
        Trainer(replace(TINY, block_size=len(ds.val)), FAST, ds, out_dir=tmp_path)
    assert e.value.key == "block_size"


@cuda
@pytest.mark.gpu
@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_cuda_amp(ds, tmp_path, amp):
    if amp == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("no bf16 on this GPU")
    h = Recorder()
    t, s = run(
        ds,
        tmp_path,
        hooks=h,
        device="cuda",
        amp=amp,
        max_steps=24,
        eval_every=12,
        grad_accum_steps=2,
    )
    assert next(t.model.parameters()).device.type == "cuda"
    assert math.isfinite(s["final_val_loss"]) and s["final_val_loss"] < math.log(
        ds.tokenizer.vocab_size
    )
    assert [st for st, _ in h.steps] == [10, 12, 22, 24]  # loss checked every 10 steps and at evals
    assert s["peak_mem_mb"] > 0
    ck = load_checkpoint(tmp_path / "best.pt")
    assert next(ck.model.parameters()).device.type == "cpu"


def test_threads_resolved_applied_and_restored(ds, tmp_path):
    assert resolve_threads(1) == 1  # more than the usable CPUs is refused (test_runner_threads)
    assert 1 <= resolve_threads(0) <= (os.cpu_count() or 1)
    before = torch.get_num_threads()
    seen = []

    class Spy(TrainerHooks):
        def on_step(self, step, loss, tokens_per_s):
            seen.append(torch.get_num_threads())

    t, s = run(ds, tmp_path, hooks=Spy(), threads=1, max_steps=2)
    assert t.threads == 1 and s["threads"] == 1 and seen == [1, 1]
    assert torch.get_num_threads() == before


SMOKE = tomllib.loads((Path(__file__).parents[2] / "experiments/smoke.toml").read_text())


def smoke_run(ds, tmp_path, gpt_kw=None, **kw):
    gpt = GPTConfig(**{**SMOKE["model"], **(gpt_kw or {})})
    h = Recorder()
    t = Trainer(gpt, replace(TrainConfig(**SMOKE["train"]), **kw), ds, out_dir=tmp_path, hooks=h)
    return t.run(), [loss for _, loss in h.steps]


@pytest.mark.parametrize("amp", ["off", "auto"])  # auto: bf16 where the CPU has it natively
@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_same_config_same_cpu_losses(ds, tmp_path, dropout, amp):
    """Same config, seed and corpus: the same losses, step by step, bit for bit (the CPU
    dropout draws from torch's seeded generator; threads pinned, as auto follows the load and
    the thread count changes the order of float sums)."""
    a, la = smoke_run(ds, tmp_path / "a", {"dropout": dropout}, amp=amp, threads=1)
    b, lb = smoke_run(ds, tmp_path / "b", {"dropout": dropout}, amp=amp, threads=1)
    assert la == lb and a["final_val_loss"] == b["final_val_loss"]
    _, lc = smoke_run(ds, tmp_path / "c", {"dropout": dropout}, amp=amp, seed=2, threads=1)
    assert lc != la


# Every speed setting the trainer has, against the plain fp32 path on the smoke profile.
# bf16 only where the CPU multiplies it natively (elsewhere it is hundreds of times slower).
SPEED_SETTINGS = {"fp32, 1 thread": {"amp": "off", "threads": 1}}
if cpu_has_native_bf16():
    SPEED_SETTINGS["bf16"] = {"amp": "bf16"}
LOSS_TOLERANCE = 0.05  # final val loss, nats; bf16 rounding over 60 steps stays well inside


@pytest.mark.parametrize("name", list(SPEED_SETTINGS))
def test_speed_settings_reach_the_fp32_losses(ds, tmp_path, name):
    ref, ref_steps = smoke_run(ds, tmp_path / "ref", {"dropout": 0.1}, amp="off")
    got, got_steps = smoke_run(ds, tmp_path / "got", {"dropout": 0.1}, **SPEED_SETTINGS[name])
    assert abs(got["final_val_loss"] - ref["final_val_loss"]) < LOSS_TOLERANCE
    assert abs(got_steps[-1] - ref_steps[-1]) < 2 * LOSS_TOLERANCE


def test_cpu_dropout_trains_like_nn_dropout(ds, tmp_path, monkeypatch):
    """The 16-bit-draw dropout is a different random stream with the same distribution: the
    smoke profile with dropout 0.1 ends at nn.Dropout's val loss within seed noise."""
    import model.gpt as gpt_module

    fast, _ = smoke_run(ds, tmp_path / "fast", {"dropout": 0.1}, amp="off")
    monkeypatch.setattr(gpt_module, "FAST_CPU_DROPOUT", False)
    plain, _ = smoke_run(ds, tmp_path / "plain", {"dropout": 0.1}, amp="off")
    assert fast["final_val_loss"] != plain["final_val_loss"]  # really another stream
    assert abs(fast["final_val_loss"] - plain["final_val_loss"]) < 0.05
