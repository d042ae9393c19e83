"""Shared fixtures: a real corpus file when the shared copy exists, else a generated one."""

from __future__ import annotations

import hashlib
import os
import random
import signal
from pathlib import Path

import pytest

# A shell without job control (`bash .ci/run &` from a script, nohup) starts its background
# jobs with SIGINT ignored, and a process that starts with SIGINT ignored passes that on to
# every process it starts: the tests' Ctrl-C would reach nobody. Restore it here, so each
# `sweep` process a test starts gets Python's KeyboardInterrupt as from a terminal (the
# tests of a SIGINT-ignoring parent ignore it themselves).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# One torch thread in tests and in the `sweep` processes they start: the tensors are tiny,
# and on a small shared machine OpenMP threads waiting on each other cost far more than
# they bring (a smoke run measured 3.5 s with 1 thread and 49 s with 2 under load).
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    yield
    torch.set_num_threads(before)


# CI clones the repo with shared/ beside it; the workplace keeps it at /work/shared.
_CANDIDATES = [
    Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt",
    Path("/work/shared/data/tinyshakespeare.txt"),
]
SHARED_CORPUS = next((p for p in _CANDIDATES if p.is_file()), _CANDIDATES[0])


def _generated_text(n_chars: int = 120_000) -> str:
    rng = random.Random(0)
    words = [
        "the",
        "king",
        "and",
        "queen",
        "of",
        "my",
        "lord",
        "good",
        "night",
        "sweet",
        "love",
        "thou",
        "art",
        "not",
        "here",
    ]
    lines = []
    while sum(map(len, lines)) < n_chars:
        lines.append(rng.choice(["KING:", "QUEEN:", "LORD:"]))
        lines.append(
            " ".join(rng.choice(words) for _ in range(rng.randint(4, 10))).capitalize() + "."
        )
        lines.append("")
    return "\n".join(lines)


@pytest.fixture(scope="session")
def corpus_path(tmp_path_factory) -> Path:
    """Path to tiny-shakespeare when it is present, else to a generated small text."""
    if SHARED_CORPUS.is_file():
        return SHARED_CORPUS
    path = tmp_path_factory.mktemp("corpus") / "generated.txt"
    path.write_text(_generated_text(), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def small_corpus(corpus_path):
    """A Corpus of a ~50 KB slice of corpus_path (fast tests)."""
    from model.data import Corpus

    text = corpus_path.read_text(encoding="utf-8")[:50_000]
    sha = hashlib.sha256(text.encode()).hexdigest()
    return Corpus("slice", text, sha, f"{corpus_path}[:50000]")


# Service fixtures (PostgreSQL, mlflow server, Chromium) from tests/fixtures_services.py,
# the Slurm cluster from tests/fixtures_slurm.py.
pytest_plugins = ["tests.fixtures_services", "tests.fixtures_slurm"]
