import errno
import hashlib
import importlib.resources
import os
import socket
import subprocess
import sys

import pytest
import torch

from model import data
from model.data import (
    CharTokenizer,
    Corpus,
    CorpusError,
    Dataset,
    resolve_corpus,
)
from model.errors import ConfigError


def test_tokenizer_roundtrip_and_unknown():
    tok = CharTokenizer.from_text("hello world")
    assert tok.chars == " dehlorw"
    assert tok.vocab_size == 8
    ids = tok.encode("hold")
    assert ids == [3, 5, 4, 1]
    assert tok.decode(ids) == "hold"
    assert tok.decode(torch.tensor(ids)) == "hold"
    assert tok.unknown("hé€lo!") == ["!", "é", "€"]
    again = CharTokenizer.from_dict(tok.to_dict())
    assert again.chars == tok.chars and again.encode("world") == tok.encode("world")


def test_dataset_split_and_batches(small_corpus):
    ds = Dataset(small_corpus)
    n = len(small_corpus.text)
    assert len(ds.train) == int(n * 0.9) and len(ds.train) + len(ds.val) == n
    assert ds.tokenizer.decode(ds.val[:50]) == small_corpus.text[len(ds.train) :][:50]
    g = torch.Generator().manual_seed(0)
    x, y = ds.get_batch("train", 8, 32, generator=g)
    assert x.shape == y.shape == (8, 32) and x.dtype == torch.long
    assert torch.equal(x[:, 1:], y[:, :-1])  # y is x shifted by one
    # each row is a contiguous slice of the training data
    text = ds.tokenizer.decode(x[3])
    assert text in small_corpus.text[: len(ds.train)]
    x2, _ = ds.get_batch("train", 8, 32, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, x2)
    assert ds.identity() == {
        "name": "slice",
        "sha256": small_corpus.sha256,
        "characters": n,
        "vocab_size": ds.tokenizer.vocab_size,
    }


def test_block_size_longer_than_val_split():
    text = "abcdefghij" * 150  # 1500 chars -> val split of 150
    ds = Dataset(Corpus("t", text, "x", "t"))
    ds.check_block_size(149)
    with pytest.raises(ConfigError) as e:
        ds.check_block_size(150)
    assert e.value.key == "block_size"
    assert str(e.value) == (
        "block_size (150) must be shorter than the validation split (150 characters)"
    )


def test_pydoc_is_deterministic():
    a, b = resolve_corpus("pydoc"), resolve_corpus("pydoc")
    assert a.name == "pydoc"
    assert len(a.text) > 100_000 and a.sha256 == b.sha256
    assert a.sha256 == hashlib.sha256(a.text.encode()).hexdigest()


def test_file_corpus(tmp_path, small_corpus):
    p = tmp_path / "mine.txt"
    p.write_text(small_corpus.text, encoding="utf-8")
    c = resolve_corpus(str(p))
    assert c.name == str(p) and c.text == small_corpus.text and c.sha256 == small_corpus.sha256
    with pytest.raises(CorpusError, match=r"missing\.txt"):
        resolve_corpus(str(tmp_path / "missing.txt"))
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 ".encode("latin-1") * 500)
    with pytest.raises(CorpusError, match=r"latin1\.txt is not UTF-8"):
        resolve_corpus(str(tmp_path / "latin1.txt"))
    (tmp_path / "short.txt").write_text("too short")
    with pytest.raises(CorpusError, match=r"short\.txt is too short \(9 characters"):
        resolve_corpus(str(tmp_path / "short.txt"))


def test_packaged_corpus_found_and_matches():
    """The wheel and the editable install both carry tiny-shakespeare (package data)."""
    res = importlib.resources.files("model") / "corpora" / "tinyshakespeare.txt"
    assert res.is_file()
    assert hashlib.sha256(res.read_bytes()).hexdigest() == data.SHAKESPEARE_SHA256


def test_default_is_shakespeare_offline(tmp_path, monkeypatch):
    """No download and no fallback: the default and `shakespeare` are the packaged text, with
    no network (the proxy points nowhere) and no cache folder."""
    monkeypatch.setenv("SWEEP_DATA_DIR", str(tmp_path / "empty"))
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    for spec in (None, "shakespeare"):
        c = resolve_corpus(spec)
        assert c.name == "shakespeare" and c.sha256 == data.SHAKESPEARE_SHA256
        assert len(c.text) == 1115394 and c.text.startswith("First Citizen:")


def test_damaged_packaged_corpus_refused(tmp_path):
    """A packaged copy that does not match its checksum is an error, never used."""
    bad = tmp_path / "tinyshakespeare.txt"
    bad.write_text("not shakespeare " * 100)
    with pytest.raises(CorpusError) as e:
        data.shakespeare_corpus(bad)
    msg = str(e.value)
    assert str(bad) in msg and data.SHAKESPEARE_SHA256 in msg
    assert hashlib.sha256(b"not shakespeare " * 100).hexdigest() in msg
    assert "reinstall sweep" in msg and "--data FILE" in msg
    with pytest.raises(CorpusError, match="missing from the installed package"):
        data.shakespeare_corpus(tmp_path / "gone.txt")


def resolve_in_child(spec: str, timeout: float = 20.0) -> subprocess.CompletedProcess:
    """resolve_corpus(spec) in a fresh interpreter, killed after `timeout` s (a FIFO blocked
    open() for ever before it was refused)."""
    code = (
        "import sys\n"
        "from model.data import CorpusError, resolve_corpus\n"
        "try:\n"
        "    resolve_corpus(sys.argv[1])\n"
        "except CorpusError as e:\n"
        "    print(e); sys.exit(2)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, spec], capture_output=True, text=True, timeout=timeout
    )


def test_fifo_refused_before_open(tmp_path):
    fifo = tmp_path / "corpus.fifo"
    os.mkfifo(fifo)
    try:
        r = resolve_in_child(str(fifo))
    except subprocess.TimeoutExpired:
        pytest.fail(f"--data {fifo} blocked (a FIFO with no writer)")
    assert r.returncode == 2, r.stderr
    assert r.stdout.strip() == (
        f"--data {fifo}: is a named pipe (FIFO), not a regular file; give a text file"
    )
    # nothing opened it for reading: a writer opening without blocking finds no reader
    with pytest.raises(OSError) as e:
        os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    assert e.value.errno == errno.ENXIO


def test_other_non_regular_files_refused(tmp_path):
    with pytest.raises(CorpusError, match=r"is a directory, not a regular file"):
        resolve_corpus(str(tmp_path))
    with pytest.raises(CorpusError, match=r"is a character device, not a regular file"):
        resolve_corpus("/dev/zero")  # would never end
    sock_path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(sock_path))
        with pytest.raises(CorpusError, match=r"is a socket, not a regular file"):
            resolve_corpus(str(sock_path))
    # a symlink to a FIFO is a FIFO
    os.mkfifo(tmp_path / "f")
    (tmp_path / "link.txt").symlink_to(tmp_path / "f")
    with pytest.raises(CorpusError, match=r"link\.txt: is a named pipe"):
        resolve_corpus(str(tmp_path / "link.txt"))


def test_url_refused_as_given():
    url = "http://example.com/x.txt"
    with pytest.raises(CorpusError) as e:
        resolve_corpus(url)
    msg = str(e.value)
    assert msg.startswith(f"--data {url}: a URL is not downloaded")
    assert "http:/example.com" not in msg
    assert f"curl -o corpus.txt '{url}'" in msg and "--data corpus.txt" in msg
    for other in ("https://host/a b.txt", "s3://bucket/key", "file:///tmp/x.txt"):
        with pytest.raises(CorpusError, match=f"--data {other}: a URL"):
            resolve_corpus(other)
