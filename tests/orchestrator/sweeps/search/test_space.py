"""The searched space: parsing, anchoring on the baseline, a trial's config."""

from __future__ import annotations

import pytest
from envs import env_of

from orchestrator.config import baseline_command, recorded_config
from orchestrator.errors import UserError
from orchestrator.sweeps.search import load_space, run_search, space_names
from orchestrator.sweeps.search.space import Kind, anchored, params_label, parse_space, trial_config


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[dropuot]\nlow = 0.0\nhigh = 0.2\n", "unknown key 'dropuot' (did you mean 'dropout'?)"),
        (
            "[dropout]\nlow = 0.3\nhigh = 0.3\n",
            "dropout: empty range: low (0.3) must be below high (0.3)",
        ),
        ("[n_layer]\nchoices = []\n", "n_layer: empty choices"),
        ("[lr]\nlow = 0.0\nhigh = 0.1\nlog = true\n", "lr: a log range needs low > 0"),
        (
            "[schedule]\nchoices = ['constant', 'linear']\n",
            "schedule=linear: schedule must be one of constant, cosine",
        ),
    ],
)
def test_a_bad_space_is_refused_before_anything_trains(search_env, tmp_path, text, message):
    tracker, _, _ = search_env
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    before = len(tracker.search(""))
    with pytest.raises(
        UserError,
        match="^space .*" + message.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?"),
    ):
        run_search(env_of(tracker), trials=2, space=str(path), study_name="bad")
    assert len(tracker.search("")) == before


def test_default_space_and_grid_refusal(search_env):
    tracker, baseline, space = search_env
    default = load_space("default")
    assert default.names == ["dropout", "n_embed", "n_layer", "schedule", "warmup_steps", "lr"]
    base = recorded_config(baseline)
    wide = anchored(default, base)
    n_embed = next(p for p in wide.params if p.name == "n_embed")
    assert base.gpt.n_embed in n_embed.choices  # the baseline's width is a choice: trial 0
    for width in n_embed.choices:
        cfg = trial_config(base, {"n_embed": width})
        assert cfg.gpt.n_embed % cfg.gpt.n_head == 0
    with pytest.raises(UserError, match="--sampler grid needs a list for every key.*dropout, lr"):
        run_search(env_of(tracker), trials=2, space=str(space), sampler="grid", study_name="grid")
    with pytest.raises(UserError, match="unknown key"):
        parse_space("x", {"bogus": {"low": 1, "high": 2}})
    cmd = baseline_command(trial_config(base, {"dropout": 0.25}))
    assert cmd.startswith("sweep baseline --profile smoke ") and "--set dropout=0.25" in cmd


@pytest.mark.parametrize("key", ["seed", "device", "save_best"])
def test_run_only_keys_cannot_be_searched(key):
    with pytest.raises(UserError, match=f"^space x: {key}: this key cannot be searched$"):
        parse_space("x", {key: {"choices": [1]}})


def test_parse_space_kinds_and_fingerprint():
    space = parse_space(
        "x",
        {
            "dropout": {"low": 0.0, "high": 0.3},
            "n_layer": {"low": 2, "high": 6, "step": 2},
            "schedule": {"values": ["cosine", "constant", "cosine"]},
        },
    )
    kinds = {p.name: p.kind for p in space.params}
    assert kinds == {"dropout": Kind.FLOAT, "n_layer": Kind.INT, "schedule": Kind.CATEGORICAL}
    assert space.params[2].choices == ("cosine", "constant")  # duplicates dropped, order kept
    # what a joining worker compares: unchanged by the Kind enum (old studies stay joinable)
    assert space.fingerprint() == (
        '["dropout float [0.0, 0.3]", "n_layer int [2, 6]", '
        "\"schedule in ['cosine', 'constant']\"]"
    )


def test_known_spaces_and_params_label():
    assert {"default", "small"} <= set(space_names())
    assert params_label({"lr": 0.00123, "n_layer": 4, "dropout": 0.1}) == (
        "dropout=0.1 lr=0.00123 n_layer=4"
    )


def test_values_that_train_but_not_as_asked_are_warned_before_the_search():
    from orchestrator.config import build
    from orchestrator.sweeps.search.space import space_notes

    base = build("smoke", {})  # n_head 2, max_steps 60
    doc = {"n_embed": {"choices": [64, 66, 75]}, "warmup_steps": {"low": 0, "high": 500}}
    space = anchored(parse_space("odd", doc), base)
    said = space_notes(space, base)
    assert len(said) == 2, said
    assert said[1].startswith("space odd: warmup_steps (500) is more than max_steps (60)")
    assert said[0] == (
        "space odd: n_embed values not divisible by n_head=2 train with fewer heads, which "
        "changes the attention too: 75 (n_head 1)"
    )
    fine = anchored(parse_space("fine", {"n_embed": {"choices": [64, 96]}}), base)
    assert space_notes(fine, base) == []
