"""Fused groups against the same runs trained alone, on the smoke profile (CPU)."""

import math
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from recording import Recorder, cuda

from model.config import GPTConfig, SampleConfig, TrainConfig
from model.data import Dataset
from model.fused import FusedTrainer, Member, fuse_key, plan_groups
from model.fused.model import Shape
from model.fused.params import FlatParams
from model.fused.plan import member_bytes, members_that_fit, step_flops
from model.gpt import GPT
from model.sample import load_checkpoint
from model.train import DivergenceError, Trainer, cpu_has_native_bf16

SMOKE = tomllib.loads((Path(__file__).parents[2] / "experiments/smoke.toml").read_text())
SAMPLE = SampleConfig(**SMOKE["sample"])
# members differing in seed, dropout and lr (dropout on in two of them)
SPECS = [{"seed": 1, "dropout": 0.1, "lr": 1e-3}, {"seed": 2, "dropout": 0.2, "lr": 2e-3},
         {"seed": 3, "dropout": 0.0, "lr": 5e-4}]  # fmt: skip


def configs(spec: dict, **train) -> tuple[GPTConfig, TrainConfig]:
    gpt = GPTConfig(**{**SMOKE["model"], "dropout": spec.get("dropout", 0.1)})
    kw = {k: v for k, v in spec.items() if k != "dropout"}
    return gpt, TrainConfig(**{**SMOKE["train"], **kw, **train})


def members(tmp: Path, specs=SPECS, **train) -> list[Member]:
    return [
        Member(*configs(s, **train), tmp / f"m{i}", Recorder(), SAMPLE) for i, s in enumerate(specs)
    ]


def solo(ds, member: Member) -> tuple[Recorder, dict]:
    h = Recorder()
    t = Trainer(member.gpt, member.train, ds, out_dir=member.out_dir.with_name(member.out_dir.name + "-solo"),
                hooks=h, sample_config=member.sample)  # fmt: skip
    return h, t.run()


@pytest.fixture(scope="module")
def ds(small_corpus):
    return Dataset(small_corpus)


@pytest.fixture(scope="module")
def fp32(ds, tmp_path_factory):
    """The three SPECS trained fused and each alone, fp32."""
    ms = members(tmp_path_factory.mktemp("fp32"), amp="off")
    results = FusedTrainer(ms, ds).run()
    return ms, results, [solo(ds, m) for m in ms]


def val_losses(h: Recorder) -> list[tuple[int, float]]:
    return [(step, m["val_loss"]) for step, m in h.evals]


def test_fused_members_are_their_solo_runs_fp32(fp32):
    ms, results, solos = fp32
    for m, r, (h, summary) in zip(ms, results, solos, strict=True):
        assert r.ok and r.error is None
        fused, alone = val_losses(m.hooks), val_losses(h)
        assert [s for s, _ in fused] == [s for s, _ in alone] == [20, 40, 60]
        assert max(abs(a - b) for (_, a), (_, b) in zip(fused, alone, strict=True)) < 1e-4
        # the same events as alone: a loss every step, the same lr, checkpoints, samples
        assert [s for s, _ in m.hooks.steps] == [s for s, _ in h.steps] == list(range(1, 61))
        assert max(abs(a - b) for (_, a), (_, b) in zip(m.hooks.steps, h.steps, strict=True)) < 1e-4
        assert [e["lr"] for _, e in m.hooks.evals] == [e["lr"] for _, e in h.evals]
        assert [v for _, v in m.hooks.checkpoints] == pytest.approx(
            [v for _, v in h.checkpoints], abs=1e-4
        )
        assert [s for s, _ in m.hooks.samples] == [20, 40, 60]
        assert m.hooks.samples == h.samples  # the same text: same weights to 1e-6, same seed
        assert set(r.summary) == set(summary)
        assert r.summary["best_val_loss"] == pytest.approx(summary["best_val_loss"], abs=1e-4)
        assert r.summary["params"] == summary["params"] and r.summary["steps"] == 60
    # the members really differ (seed, dropout, lr)
    finals = [r.summary["final_val_loss"] for r in results]
    assert len({round(v, 4) for v in finals}) == 3


def test_member_checkpoints_load_and_give_their_val_loss(fp32, ds):
    ms, results, _ = fp32
    for m, r in zip(ms, results, strict=True):
        ck = load_checkpoint(m.out_dir / "best.pt")
        assert ck.meta["step"] == r.summary["best_step"]
        assert ck.meta["val_loss"] == r.summary["best_val_loss"]
        assert ck.meta["train_config"]["seed"] == m.train.seed
        assert ck.meta["model_config"]["dropout"] == m.gpt.dropout
        assert ck.model.lm_head.weight is ck.model.transformer.wte.weight
        # the val loss of the loaded model on the run's eval batches is the recorded one
        t = Trainer(m.gpt, m.train, ds, out_dir=m.out_dir)
        assert t.evaluate(ck.model)["val_loss"] == pytest.approx(ck.meta["val_loss"], abs=1e-5)


@pytest.mark.skipif(
    not cpu_has_native_bf16(),
    reason="no native bf16 on this CPU: emulated bf16 matmuls make this test take minutes "
    "(the fp32 test runs the same code)",
)
def test_fused_members_are_their_solo_runs_bf16(ds, tmp_path):
    ms = members(tmp_path, amp="bf16")
    results = FusedTrainer(ms, ds).run()
    for m, r in zip(ms, results, strict=True):
        h, _ = solo(ds, m)
        assert r.ok
        fused, alone = val_losses(m.hooks), val_losses(h)
        assert max(abs(a - b) for (_, a), (_, b) in zip(fused, alone, strict=True)) < 1e-2


# lr=10 with weight decay 1: p *= 1 - lr * wd = -9 each step, non-finite within ~15 steps
DIVERGING = {"seed": 4, "dropout": 0.1, "lr": 10.0, "weight_decay": 1.0}


def test_a_diverging_member_fails_alone(ds, tmp_path):
    with_it = members(tmp_path / "a", [SPECS[0], DIVERGING, SPECS[1]])
    without = members(tmp_path / "b", [SPECS[0], SPECS[1]])
    ra = FusedTrainer(with_it, ds).run()
    rb = FusedTrainer(without, ds).run()
    err = ra[1].error
    assert isinstance(err, DivergenceError) and not math.isfinite(err.loss)
    assert ra[1].summary is None
    with pytest.raises(DivergenceError) as alone:  # the same step as the run alone
        Trainer(with_it[1].gpt, with_it[1].train, ds, out_dir=tmp_path / "solo").run()
    assert err.step == alone.value.step and 1 < err.step < 20  # before the first eval
    assert [s for s, _ in with_it[1].hooks.steps] == list(range(1, err.step))
    assert with_it[1].hooks.evals == [] and not (tmp_path / "a" / "m1" / "best.pt").exists()

    def losses(h):  # every number but the throughput
        return h.steps, [
            (s, {k: v for k, v in e.items() if k != "tokens_per_s"}) for s, e in h.evals
        ]

    # the others: bit for bit what they are in a group without it
    for a, b in ((0, 0), (2, 1)):
        assert ra[a].ok and rb[b].ok
        assert losses(with_it[a].hooks) == losses(without[b].hooks)
        assert with_it[a].hooks.samples == without[b].hooks.samples
        assert ra[a].summary["best_val_loss"] == rb[b].summary["best_val_loss"]


def test_a_member_whose_hook_raises_fails_alone(ds, tmp_path):
    class Prune(Exception):
        pass

    class Pruner(Recorder):
        def on_eval(self, step, metrics):
            super().on_eval(step, metrics)
            raise Prune(step)

    ms = members(tmp_path, [SPECS[0], SPECS[2]], max_steps=40)
    ms[0].hooks = Pruner()
    results = FusedTrainer(ms, ds).run()
    assert isinstance(results[0].error, Prune) and results[0].error.args == (20,)
    assert [s for s, _ in ms[0].hooks.evals] == [20]
    assert results[1].ok and [s for s, _ in ms[1].hooks.evals] == [20, 40]


def test_keyboard_interrupt_propagates(ds, tmp_path):
    class CtrlC(Recorder):
        def on_step(self, step, loss, tokens_per_s):
            if step == 3:
                raise KeyboardInterrupt

    ms = members(tmp_path, [SPECS[0], SPECS[1]])
    ms[1].hooks = CtrlC()
    with pytest.raises(KeyboardInterrupt):
        FusedTrainer(ms, ds).run()


def test_the_cuda_path_on_the_cpu(ds, tmp_path):
    """Hash masks and the vectorised AdamW (what CUDA runs, without graphs): a member of a
    group trains as it does in a group of one (how a solo run trains on CUDA)."""
    ms = members(tmp_path / "g", amp="off")
    kw = {"masks": "hash", "optimizer": "tensor"}
    group = FusedTrainer(ms, ds, **kw).run()
    for i, m in enumerate(ms):
        one = Member(m.gpt, m.train, tmp_path / f"one{i}", Recorder(), SAMPLE)
        (alone,) = FusedTrainer([one], ds, **kw).run()
        assert group[i].ok and alone.ok
        diff = [
            abs(a - b)
            for (_, a), (_, b) in zip(val_losses(m.hooks), val_losses(one.hooks), strict=True)
        ]
        assert max(diff) < 1e-4
    # ...and the tensor-op AdamW is torch's AdamW: generator masks, vectorised optimizer
    tensor_opt = members(tmp_path / "t", amp="off")
    FusedTrainer(tensor_opt, ds, optimizer="tensor").run()
    for m in tensor_opt:
        h, _ = solo(ds, m)
        diff = [
            abs(a - b) for (_, a), (_, b) in zip(val_losses(m.hooks), val_losses(h), strict=True)
        ]
        assert max(diff) < 1e-4


def test_the_cuda_decoder_samples_what_sample_members_does(fp32, ds):
    """The CUDA sampler (static buffers, one capturable call a token; here eager) against the
    CPU one, on trained weights, with per-member settings, past block_size (32) too."""
    from model.fused.sample import Decoder, sample_members

    ms, _, _ = fp32
    gpt = replace(ms[0].gpt, vocab_size=ds.tokenizer.vocab_size)
    params = FlatParams(gpt, [m.train.seed for m in ms], "cpu")
    for k, m in enumerate(ms):  # the members' best weights
        sd = load_checkpoint(m.out_dir / "best.pt").model.state_dict()
        params.data.detach()[k] = torch.cat([sd[s.name].reshape(-1) for s in params.slots])
    shape = Shape(3, 2, 2, 64, ds.tokenizer.vocab_size, 32, True, False)
    cfgs = [
        SampleConfig(max_new_tokens=50),
        None,
        SampleConfig(temperature=1.2, top_k=0, max_new_tokens=20),
    ]
    texts = Decoder(params.data, params.layout, shape, False, []).generate(
        ds.tokenizer, cfgs, [5, 6, 7]
    )
    assert texts[1] is None and [len(texts[0]), len(texts[2])] == [51, 21]
    for k in (0, 2):
        one = params.data.detach()[k : k + 1]
        assert (
            texts[k]
            == sample_members(
                one, params.layout, replace(shape, members=1), ds.tokenizer, cfgs[k], [5 + k]
            )[0]
        )


def test_fuse_key_and_what_may_differ(ds):
    g, t = configs(SPECS[0])
    base = fuse_key(g, t)
    for kw in ({"seed": 9}, {"lr": 0.1}, {"warmup_steps": 0}, {"schedule": "cosine"},
               {"beta2": 0.99}, {"grad_clip": 0.0}, {"weight_decay": 0.1}, {"min_lr_ratio": 0.5}):  # fmt: skip
        assert fuse_key(g, replace(t, **kw)) == base, kw
    assert fuse_key(replace(g, dropout=0.3), t) == base
    for kw in ({"max_steps": 61}, {"batch_size": 8}, {"eval_every": 10}, {"amp": "bf16"},
               {"eval_iters": 2}, {"grad_accum_steps": 2}, {"device": "auto"}):  # fmt: skip
        assert fuse_key(g, replace(t, **kw)) != base, kw
    for kw in ({"n_layer": 3}, {"n_embed": 32}, {"block_size": 16}, {"bias": False}):
        assert fuse_key(replace(g, **kw), t) != base, kw
    with pytest.raises(ValueError, match="differ in shape"):
        FusedTrainer([Member(g, t, Path("a")), Member(g, replace(t, batch_size=8), Path("b"))], ds)


def test_plan_groups():
    g, t = configs(SPECS[0])
    assert plan_groups(8, "cpu", g, t, fuse="off") == [1] * 8
    assert plan_groups(8, "cpu", g, t, fuse="auto") == [8]  # smoke: fusing pays
    assert plan_groups(10, "cpu", g, t, max_members=8) == [5, 5]
    assert plan_groups(9, "cpu", g, t, max_members=4) == [3, 3, 3]
    assert plan_groups(0, "cpu", g, t) == []
    assert plan_groups(4, "mps", g, t) == [1] * 4
    # memory: as many as fit in half of what is free
    per = member_bytes(g, t)
    assert plan_groups(8, "cpu", g, t, free=int(per * 6.5)) == [3, 3, 2]
    assert members_that_fit("cpu", g, t, free=1) == 1
    # the CPU-safe shape: a step of ~170 GFLOP, where fusing was slower; auto trains alone
    safe = tomllib.loads((Path(__file__).parents[2] / "experiments/cpu-safe.toml").read_text())
    gs, ts = GPTConfig(**safe["model"]), TrainConfig(**safe["train"])
    assert 1.5e11 < step_flops(gs, ts) < 2e11
    assert plan_groups(4, "cpu", gs, ts) == [1] * 4
    assert plan_groups(4, "cpu", gs, ts, fuse="on", free=100 * 2**30) == [4]
    with pytest.raises(ValueError, match="fuse must be one of"):
        plan_groups(2, "cpu", g, t, fuse="yes")


def test_member_bytes_counts_the_parameters():
    g, t = configs(SPECS[0])
    g = replace(g, vocab_size=65)
    n = sum(p.numel() for p in GPT(g).parameters())
    from model.fused.plan import n_params

    assert n_params(g) == n and n_params(replace(g, bias=False)) == sum(
        p.numel() for p in GPT(replace(g, bias=False)).parameters()
    )
    assert member_bytes(g, t) > 18 * n


@cuda
@pytest.mark.gpu
def test_cuda_group_agrees_with_its_members_alone(ds, tmp_path):
    ms = members(tmp_path / "g", device="cuda", amp="bf16")
    group = FusedTrainer(ms, ds).run()
    for i, m in enumerate(ms):
        h = Recorder()
        t = Trainer(m.gpt, m.train, ds, out_dir=tmp_path / f"s{i}", hooks=h, sample_config=SAMPLE)
        summary = t.run()  # on CUDA: a fused group of one
        assert group[i].ok and summary["compile_s"] > 0
        diff = [
            abs(a - b) for (_, a), (_, b) in zip(val_losses(m.hooks), val_losses(h), strict=True)
        ]
        assert max(diff) < 1e-2
        assert [s for s, _ in h.steps] == [10, 20, 30, 40, 50, 60]
        ck = load_checkpoint(tmp_path / f"s{i}" / "best.pt")
        assert ck.meta["val_loss"] == summary["best_val_loss"]
