"""Sampler and pruner names, and the Optuna objects behind them."""

from __future__ import annotations

import optuna
import pytest

from orchestrator.config import build
from orchestrator.errors import UserError
from orchestrator.sweeps.search.samplers import Pruner, Sampler, make_pruner, make_sampler
from orchestrator.sweeps.search.space import parse_space

SPACE = parse_space("x", {"dropout": {"values": [0.0, 0.1]}, "lr": {"values": [1e-3, 3e-3]}})


def test_names_are_parsed_or_refused_with_the_known_ones():
    assert Sampler.parse("grid") is Sampler.GRID and Pruner.parse("none") is Pruner.NONE
    with pytest.raises(UserError, match=r"^unknown sampler 'bayes'; choose one of: tpe, random"):
        Sampler.parse("bayes")
    with pytest.raises(UserError, match=r"^unknown pruner 'asha'; choose one of: hyperband"):
        make_pruner("asha", build("smoke", {}))


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("tpe", optuna.samplers.TPESampler),
        ("random", optuna.samplers.RandomSampler),
        ("cmaes", optuna.samplers.CmaEsSampler),
        ("grid", optuna.samplers.RandomSampler),  # the grid is enqueued: test_samplers_grid.py
    ],
)
def test_make_sampler(name, cls):
    assert isinstance(make_sampler(name, SPACE, seed=0, n_trials=6), cls)


def test_make_pruner():
    base = build("smoke", {"max_steps": "90", "eval_every": "10"})
    assert isinstance(make_pruner("hyperband", base), optuna.pruners.HyperbandPruner)
    assert isinstance(make_pruner("median", base), optuna.pruners.MedianPruner)
    assert isinstance(make_pruner("none", base), optuna.pruners.NopPruner)
