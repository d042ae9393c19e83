"""`env_of(tracker)`: the RunEnv a command builds, for tests that call a sweep directly."""

from __future__ import annotations


def env_of(tracker, progress=None, **options):
    from orchestrator.progress import Progress
    from orchestrator.sweeps import command_env

    return command_env(tracker, progress or Progress(live=False), **options)


def ablation_of(tracker, knob: str, baseline_id: str):
    """The parent run of the ablation of `knob` against that baseline (None if none)."""
    from orchestrator import tracking as T
    from orchestrator.sweeps.sweep import Sweep

    key = {T.TAG_ROLE: T.Role.ABLATION, T.TAG_KNOB: knob, T.TAG_BASELINE: baseline_id}
    return Sweep.find(tracker, key)


# The smoke profile, made smaller still (~1 s a run): 12 steps, an eval every 4.
TINY = {
    "max_steps": "12",
    "eval_every": "4",
    "eval_iters": "2",
    "batch_size": "8",
    "block_size": "16",
    "n_embed": "32",
    "max_new_tokens": "16",
}
TINY_SETS = [arg for key, value in TINY.items() for arg in ("--set", f"{key}={value}")]


def short_corpus(corpus_path, folder):
    """`folder/corpus.txt`: the corpus's first 60,000 characters, enough for TINY runs."""
    corpus = folder / "corpus.txt"
    corpus.write_text(corpus_path.read_text(encoding="utf-8")[:60_000], encoding="utf-8")
    return corpus
