"""A normal wheel install carries what `sweep` reads through importlib.resources: the
packaged tiny-shakespeare (and the profiles), so no command needs the source tree or a
download. The editable install is what the other tests run on."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from model import data

ROOT = Path(__file__).resolve().parents[2]
PIP = (sys.executable, "-m", "pip", "-q")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of the tracked files (no build/ or egg-info left in the
    checkout), without network (the installed setuptools)."""
    src = tmp_path_factory.mktemp("src")
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, files):
        rel = Path(os.fsdecode(name))
        if not (ROOT / rel).is_file():
            continue  # deleted in the work tree
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes((ROOT / rel).read_bytes())
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [*PIP, "wheel", "--no-deps", "--no-build-isolation", "-w", str(out), str(src)],
        check=True,
        capture_output=True,
    )
    (whl,) = out.glob("sweep-*.whl")
    return whl


@pytest.mark.slow
def test_wheel_carries_the_corpus(wheel, tmp_path):
    with zipfile.ZipFile(wheel) as z:
        blob = z.read("model/corpora/tinyshakespeare.txt")
    assert hashlib.sha256(blob).hexdigest() == data.SHAKESPEARE_SHA256
    # installed from the wheel (not the checkout), importlib.resources finds it there
    target = tmp_path / "site"
    subprocess.run(
        [*PIP, "install", "--no-deps", "--no-index", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    code = (
        "import hashlib, importlib.resources, model, model.data as d\n"
        "c = d.resolve_corpus('shakespeare')\n"
        "print(model.__file__)\n"
        "print(c.sha256, len(c.text))\n"
        "print(c.source)\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(target)},
        cwd=tmp_path,
        check=True,
    )
    where, numbers, source = r.stdout.splitlines()
    assert Path(where).is_relative_to(target)
    assert numbers == f"{data.SHAKESPEARE_SHA256} 1115394"
    assert Path(source) == target / "model" / "corpora" / "tinyshakespeare.txt"
