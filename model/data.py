"""Corpus resolution (tiny-shakespeare shipped in the package, pydoc, or a file),
CharTokenizer, Dataset."""

from __future__ import annotations

import hashlib
import importlib.resources
import os
import stat
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path

import torch

from model.errors import ConfigError

SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
SHAKESPEARE_FILE = "corpora/tinyshakespeare.txt"  # inside this package (package data)
MIN_CHARS = 1000  # a corpus shorter than this cannot give a useful train/val split
FILE_KINDS = (  # what a --data path that is not a regular file is, for the message
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISDIR, "a directory"),
)


class CorpusError(Exception):
    """The corpus cannot be had; the message names the way(s) out."""


@dataclass(frozen=True)
class Corpus:
    name: str
    text: str
    sha256: str
    source: str


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pydoc_corpus() -> Corpus:
    """CPython's bundled reference text: an offline corpus, only when asked for by name."""
    from pydoc_data.topics import topics

    text = "\n".join(topics[k] for k in sorted(topics))
    return Corpus("pydoc", text, sha256_hex(text.encode()), "pydoc_data.topics")


def packaged_shakespeare() -> Traversable:
    """tiny-shakespeare (1.1 MB, public domain) as shipped inside this package."""
    return importlib.resources.files("model").joinpath(SHAKESPEARE_FILE)


def shakespeare_corpus(resource: Traversable | None = None) -> Corpus:
    """tiny-shakespeare from the package, checked against its sha256: no download, and never
    another corpus in its place."""
    resource = packaged_shakespeare() if resource is None else resource
    try:
        data = resource.read_bytes()
    except OSError as e:
        raise CorpusError(
            f"tiny-shakespeare is missing from the installed package ({resource}: "
            f"{e.strerror or e}); reinstall sweep, or train on your own text with "
            f"`sweep baseline --data FILE`"
        ) from e
    got = sha256_hex(data)
    if got != SHAKESPEARE_SHA256:
        raise CorpusError(
            f"the packaged tiny-shakespeare at {resource} has sha256 {got}, expected "
            f"{SHAKESPEARE_SHA256}; reinstall sweep, or train on your own text with "
            f"`sweep baseline --data FILE`"
        )
    return Corpus("shakespeare", data.decode("utf-8"), got, str(resource))


def looks_like_url(spec: str) -> bool:
    scheme, sep, _ = spec.partition("://")
    return bool(sep) and scheme.replace("+", "").replace("-", "").replace(".", "").isalnum()


def read_regular_file(spec: str) -> bytes:
    """The bytes of the file `spec` names; anything but a regular file is refused before it
    could block (a FIFO's open() waits for a writer, a device may never end)."""
    path = Path(spec).expanduser()
    try:
        kind = next((what for test, what in FILE_KINDS if test(os.stat(path).st_mode)), None)
        if kind is not None:
            raise CorpusError(f"--data {spec}: is {kind}, not a regular file; give a text file")
        # O_NONBLOCK: should a FIFO be put there since the stat, open() does not wait on it
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise CorpusError(f"cannot read corpus file {spec}: {e.strerror or e}") from e
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise CorpusError(f"--data {spec}: is not a regular file; give a text file")
        os.set_blocking(fd, True)
        try:
            return f.read()
        except OSError as e:
            raise CorpusError(f"cannot read corpus file {spec}: {e.strerror or e}") from e


def file_corpus(spec: str) -> Corpus:
    if looks_like_url(spec):
        raise CorpusError(
            f"--data {spec}: a URL is not downloaded; download the file yourself (e.g. "
            f"`curl -o corpus.txt '{spec}'`) and pass its path: `--data corpus.txt`"
        )
    data = read_regular_file(spec)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CorpusError(
            f"corpus file {spec} is not UTF-8 text ({e.reason} at byte {e.start})"
        ) from e
    if len(text) < MIN_CHARS:
        raise CorpusError(
            f"corpus file {spec} is too short ({len(text)} characters; need at least {MIN_CHARS})"
        )
    return Corpus(spec, text, sha256_hex(data), str(Path(spec).expanduser()))


def resolve_corpus(spec: str | None = None) -> Corpus:
    """None or "shakespeare": the packaged tiny-shakespeare; "pydoc"; or a path to a file."""
    if spec is None or spec == "shakespeare":
        return shakespeare_corpus()
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
