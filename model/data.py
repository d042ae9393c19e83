"""Corpus resolution (tiny-shakespeare, pydoc, or a file), CharTokenizer, Dataset."""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import torch

from model.errors import ConfigError
from model.files import atomic_path

SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
SHAKESPEARE_URL = (
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
)
SHAKESPEARE_FILE = "tinyshakespeare.txt"
DATA_DIR_ENV = "SWEEP_DATA_DIR"
MIN_CHARS = 1000  # a corpus shorter than this cannot give a useful train/val split


class CorpusError(Exception):
    """The corpus cannot be had; the message names the way(s) out."""


def default_data_dir() -> Path:
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "sweep"


@dataclass(frozen=True)
class Corpus:
    name: str
    text: str
    sha256: str
    source: str
    notice: str | None = None


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pydoc_corpus(notice: str | None = None) -> Corpus:
    from pydoc_data.topics import topics

    text = "\n".join(topics[k] for k in sorted(topics))
    return Corpus("pydoc", text, sha256_hex(text.encode()), "pydoc_data.topics", notice)


def file_corpus(spec: str) -> Corpus:
    path = Path(spec).expanduser()
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CorpusError(f"cannot read corpus file {path}: {e.strerror or e}") from e
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CorpusError(
            f"corpus file {path} is not UTF-8 text ({e.reason} at byte {e.start})"
        ) from e
    if len(text) < MIN_CHARS:
        raise CorpusError(
            f"corpus file {path} is too short ({len(text)} characters; need at least {MIN_CHARS})"
        )
    return Corpus(spec, text, sha256_hex(data), str(path))


def ways_out(path: Path) -> str:
    return (
        f"put the file at {path} (or set {DATA_DIR_ENV} to a folder holding {SHAKESPEARE_FILE}), "
        f"or train on your own text with `sweep baseline --data FILE` (sweeps use their "
        f"baseline's corpus)"
    )


def download(url: str, path: Path, timeout: float) -> bytes:
    """Fetch url, verify its checksum, then write it atomically to path."""
    with urllib.request.urlopen(url, timeout=timeout) as r:
        data = r.read()
    got = sha256_hex(data)
    if got != SHAKESPEARE_SHA256:
        raise CorpusError(
            f"the download from {url} has sha256 {got}, expected {SHAKESPEARE_SHA256}; not used"
        )
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return data


def shakespeare_corpus(data_dir: Path, url: str, timeout: float, fallback: bool) -> Corpus:
    path = data_dir / SHAKESPEARE_FILE
    if path.exists():
        try:
            data = path.read_bytes()
        except OSError as e:
            raise CorpusError(f"cannot read {path}: {e.strerror or e}; {ways_out(path)}") from e
        got = sha256_hex(data)
        if got != SHAKESPEARE_SHA256:
            raise CorpusError(
                f"the file at {path} has sha256 {got}, expected {SHAKESPEARE_SHA256}; "
                f"delete it to download it again, or record a baseline on it as your own text with "
                f"`sweep baseline --data {path}`"
            )
        return Corpus("shakespeare", data.decode("utf-8"), got, str(path))
    try:
        data = download(url, path, timeout)
    except CorpusError as e:
        why = str(e)
        if not fallback:
            raise CorpusError(f"tiny-shakespeare could not be had: {why}; {ways_out(path)}") from e
    except (OSError, ValueError) as e:  # URLError, HTTPError, timeouts are OSError
        reason = getattr(e, "reason", None) or e
        if isinstance(e, urllib.error.HTTPError):
            reason = f"HTTP {e.code} {e.reason}"
        why = f"download from {url} failed ({reason})"
        if not fallback:
            raise CorpusError(f"tiny-shakespeare could not be had: {why}; {ways_out(path)}") from e
    else:
        return Corpus("shakespeare", data.decode("utf-8"), SHAKESPEARE_SHA256, str(path))
    notice = (
        f"tiny-shakespeare could not be had: {why}. "
        f"Training on the offline pydoc corpus instead; results are NOT comparable to "
        f"tiny-shakespeare runs. To fix: {ways_out(path)}."
    )
    return pydoc_corpus(notice)


def resolve_corpus(
    spec: str | None = None,
    *,
    data_dir: Path | None = None,
    url: str = SHAKESPEARE_URL,
    timeout: float = 10.0,
) -> Corpus:
    """None = the default (shakespeare, falling back to pydoc); "shakespeare", "pydoc", or a path."""
    if spec is None or spec == "shakespeare":
        d = Path(data_dir) if data_dir is not None else default_data_dir()
        return shakespeare_corpus(d, url, timeout, fallback=spec is None)
    if spec == "pydoc":
        return pydoc_corpus()
    return file_corpus(spec)


class CharTokenizer:
    def __init__(self, chars: str):
        self.chars = "".join(sorted(set(chars)))
        self.stoi = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        return cls("".join(sorted(set(text))))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, s: str) -> list[int]:
        return [self.stoi[c] for c in s]

    def decode(self, ids) -> str:
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        return "".join(self.chars[i] for i in ids)

    def unknown(self, s: str) -> list[str]:
        return sorted(set(s) - self.stoi.keys())

    def to_dict(self) -> dict:
        return {"chars": self.chars}

    @classmethod
    def from_dict(cls, d: dict) -> CharTokenizer:
        return cls(d["chars"])


class Dataset:
    def __init__(self, corpus: Corpus, val_fraction: float = 0.1):
        if not 0 < val_fraction < 1:
            raise ConfigError(
                "val_fraction", f"val_fraction must be in (0, 1) (got {val_fraction!r})"
            )
        self.corpus = corpus
        self.tokenizer = CharTokenizer.from_text(corpus.text)
        ids = torch.tensor(self.tokenizer.encode(corpus.text), dtype=torch.long)
        n = int(len(ids) * (1 - val_fraction))
        self.train, self.val = ids[:n], ids[n:]

    def check_block_size(self, block_size: int) -> None:
        shortest = min(len(self.train), len(self.val))
        if block_size >= shortest:
            split = "validation" if len(self.val) <= len(self.train) else "training"
            raise ConfigError(
                "block_size",
                f"block_size ({block_size}) must be shorter than the {split} split "
                f"({shortest} characters)",
            )

    def get_batch(
        self,
        split: str,
        batch_size: int,
        block_size: int,
        generator: torch.Generator | None = None,
        device: str | torch.device = "cpu",
    ):
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val' (got {split!r})")
        data = self.train if split == "train" else self.val
        ix = torch.randint(len(data) - block_size, (batch_size,), generator=generator)
        chunk = data[ix[:, None] + torch.arange(block_size + 1)]
        x, y = chunk[:, :-1], chunk[:, 1:]
        if torch.device(device).type == "cuda":
            x = x.pin_memory().to(device, non_blocking=True)
            y = y.pin_memory().to(device, non_blocking=True)
        elif torch.device(device).type != "cpu":
            x, y = x.to(device), y.to(device)
        return x, y

    def identity(self) -> dict:
        return {
            "name": self.corpus.name,
            "sha256": self.corpus.sha256,
            "characters": len(self.corpus.text),
            "vocab_size": self.tokenizer.vocab_size,
        }
