import pytest

from orchestrator.config import build, from_flat, load_profile, parse_overrides, profile_names
from orchestrator.errors import UserError


def test_profiles_ship_with_the_package_and_carry_the_course_numbers():
    assert {"smoke", "baseline", "cpu-safe", "mid-gpu", "memory-tight", "next-level"} <= set(
        profile_names()
    )
    cfg = build("baseline", {})
    assert (
        cfg.train.max_steps,
        cfg.gpt.block_size,
        cfg.gpt.n_layer,
        cfg.gpt.n_embed,
        cfg.gpt.dropout,
    ) == (1000, 128, 4, 256, 0.1)
    nxt = build("next-level", {})
    assert (
        nxt.train.grad_accum_steps,
        nxt.train.schedule,
        nxt.train.warmup_steps,
        nxt.train.max_steps,
    ) == (2, "cosine", 200, 6000)


def test_overrides_are_typed_and_the_notes_aliases_work():
    cfg = build(
        "smoke", parse_overrides(["n_layer=3", "dropout=0.2", "val_every=5", "use_cosine=true"])
    )
    assert cfg.gpt.n_layer == 3 and cfg.gpt.dropout == 0.2
    assert cfg.train.eval_every == 5 and cfg.train.schedule == "cosine"


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        (["dropout=1.5"], "--set dropout=1.5: dropout must be in [0, 1)"),
        (["n_layer=two"], "--set n_layer=two: n_layer must be an integer"),
        (["n_embed=65"], "--set n_embed=65: n_embed (65) must be divisible by n_head"),
        (["batch_size=15", "grad_accum_steps=2"], "--set batch_size=15"),
        (["dropuot=0.1"], "unknown key 'dropuot' (did you mean 'dropout'?)"),
        (["n_layer"], "--set n_layer: expected key=value"),
        (["use_cosine=maybe"], "--set use_cosine=maybe: expected true or false"),
    ],
)
def test_bad_overrides_name_the_key_as_typed(pairs, message):
    with pytest.raises(UserError) as err:
        build("smoke", parse_overrides(pairs))
    assert message in str(err.value)


def test_batch_not_divisible_by_accumulation_is_refused():
    with pytest.raises(UserError, match="batch_size .* divisible by grad_accum_steps"):
        build("smoke", parse_overrides(["grad_accum_steps=3"]))


def test_unknown_profile_lists_known_ones(tmp_path):
    with pytest.raises(UserError, match="unknown profile 'tiny'; known: .*smoke"):
        load_profile("tiny")
    own = tmp_path / "mine.toml"
    own.write_text("[model]\nn_layer = 3\n[train]\nmax_steps = 7\n")
    cfg = build(str(own), {})
    assert cfg.gpt.n_layer == 3 and cfg.train.max_steps == 7
    bad = tmp_path / "bad.toml"
    bad.write_text("[model]\nlayers = 3\n")
    with pytest.raises(UserError, match="unknown key 'layers'"):
        build(str(bad), {})


def test_flat_round_trip_through_strings_as_mlflow_stores_them():
    cfg = build("cpu-safe", parse_overrides(["dropout=0.15", "data=pydoc"]))
    back = from_flat({k: str(v) for k, v in cfg.to_flat().items()})
    assert back == cfg
    assert back.config_hash() == cfg.config_hash()
    assert cfg.replace(dropout=0.2).config_hash() != cfg.config_hash()


def test_the_ready_to_run_command_trains_exactly_that_config(tmp_path):
    import shlex

    from orchestrator.config import baseline_command

    corpus = tmp_path / "my corpus.txt"
    cfg = build(
        "cpu-safe", parse_overrides(["dropout=0.25", "n_layer=6", "seed=7"]), data=str(corpus)
    )
    cmd = baseline_command(cfg, seeds=3)
    args = shlex.split(cmd)
    assert args[:4] == ["sweep", "baseline", "--profile", "cpu-safe"] and args[-2:] == [
        "--seeds",
        "3",
    ]
    sets = [args[i + 1] for i, a in enumerate(args) if a == "--set"]
    assert sorted(sets) == ["dropout=0.25", "n_layer=6", "seed=7"]
    data = args[args.index("--data") + 1]
    assert build(args[3], parse_overrides(sets), data=data).config_hash() == cfg.config_hash()
