import functools
import hashlib
import http.server
import threading

import pytest
import torch

from model import data
from model.data import (
    CharTokenizer,
    Corpus,
    CorpusError,
    Dataset,
    default_data_dir,
    resolve_corpus,
)
from model.errors import ConfigError

DEAD_URL = "http://127.0.0.1:9/"  # discard port: refused at once


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def serve(tmp_path):
    """Serve files written to a folder from 127.0.0.1; yields (folder, base url)."""
    root = tmp_path / "www"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


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


def test_default_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("SWEEP_DATA_DIR", str(tmp_path / "d"))
    assert default_data_dir() == tmp_path / "d"
    monkeypatch.delenv("SWEEP_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "c"))
    assert default_data_dir() == tmp_path / "c" / "sweep"


def test_pydoc_is_deterministic():
    a, b = resolve_corpus("pydoc"), resolve_corpus("pydoc")
    assert a.name == "pydoc" and a.notice is None
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


def test_shakespeare_from_data_dir(corpus_path):
    if corpus_path.name != "tinyshakespeare.txt":
        pytest.skip("tiny-shakespeare is not on this machine")
    c = resolve_corpus("shakespeare", data_dir=corpus_path.parent, url=DEAD_URL)
    assert c.name == "shakespeare" and c.sha256 == data.SHAKESPEARE_SHA256
    assert len(c.text) == 1115394


def test_checksum_mismatch_refused(tmp_path):
    (tmp_path / "tinyshakespeare.txt").write_text("not shakespeare " * 100)
    for spec in (None, "shakespeare"):  # never used silently, not even with fallback allowed
        with pytest.raises(CorpusError) as e:
            resolve_corpus(spec, data_dir=tmp_path, url=DEAD_URL)
        msg = str(e.value)
        assert str(tmp_path / "tinyshakespeare.txt") in msg
        assert data.SHAKESPEARE_SHA256 in msg
        assert hashlib.sha256(b"not shakespeare " * 100).hexdigest() in msg


def test_download_writes_file_atomically(serve, tmp_path, corpus_path, monkeypatch):
    root, base = serve
    payload = corpus_path.read_bytes()
    (root / "input.txt").write_bytes(payload)
    # the shared file's sha256 is the real one; a generated corpus needs the expected value moved
    monkeypatch.setattr(data, "SHAKESPEARE_SHA256", hashlib.sha256(payload).hexdigest())
    dest = tmp_path / "cache" / "sub"
    c = resolve_corpus("shakespeare", data_dir=dest, url=f"{base}/input.txt")
    assert c.name == "shakespeare" and c.text == payload.decode()
    assert (dest / "tinyshakespeare.txt").read_bytes() == payload
    assert sorted(p.name for p in dest.iterdir()) == ["tinyshakespeare.txt"]  # no temp left
    # a second call reads the cached file: the server is not needed any more
    (root / "input.txt").unlink()
    assert resolve_corpus("shakespeare", data_dir=dest, url=DEAD_URL).sha256 == c.sha256


def test_download_with_bad_checksum_refused(serve, tmp_path):
    root, base = serve
    (root / "input.txt").write_text("tampered " * 200)
    dest = tmp_path / "cache"
    with pytest.raises(CorpusError, match="expected " + data.SHAKESPEARE_SHA256):
        resolve_corpus("shakespeare", data_dir=dest, url=f"{base}/input.txt")
    assert not dest.exists() or list(dest.iterdir()) == []  # nothing written
    # with fallback allowed, the bad download is reported and pydoc is used instead
    c = resolve_corpus(None, data_dir=dest, url=f"{base}/input.txt")
    assert c.name == "pydoc" and "sha256" in c.notice


def test_offline_fallback_only_by_default(tmp_path):
    c = resolve_corpus(None, data_dir=tmp_path, url=DEAD_URL, timeout=2)
    assert c.name == "pydoc" and c.text == resolve_corpus("pydoc").text
    assert "tiny-shakespeare could not be had" in c.notice
    assert str(tmp_path / "tinyshakespeare.txt") in c.notice
    assert "SWEEP_DATA_DIR" in c.notice and "--data FILE" in c.notice
    assert not c.notice.upper().startswith("WARNING")  # shown after "warning: " already
    assert "sweep baseline --data FILE" in c.notice  # ablate/search have no --data option
    with pytest.raises(CorpusError) as e:
        resolve_corpus("shakespeare", data_dir=tmp_path, url=DEAD_URL, timeout=2)
    msg = str(e.value)
    assert "could not be had" in msg and "--data FILE" in msg
    assert str(tmp_path / "tinyshakespeare.txt") in msg


def test_http_error_is_a_failed_download(serve, tmp_path):
    _, base = serve
    dest = tmp_path / "cache"
    with pytest.raises(CorpusError, match="HTTP 404"):
        resolve_corpus("shakespeare", data_dir=dest, url=f"{base}/nothing-here.txt")
    assert not dest.exists()
