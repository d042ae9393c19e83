"""Reading commands answer without importing torch (it costs seconds per command): a real
store is read in a fresh interpreter and `torch` must not be in sys.modules afterwards."""

from __future__ import annotations

import subprocess
import sys

import pytest
from smoke_store import smoke_store  # noqa: F401  (fixture)

CODE = """
import sys
from orchestrator.cli import app
try:
    app(sys.argv[1:], standalone_mode=False)
except SystemExit:
    pass
print("TORCH" if "torch" in sys.modules else "NO-TORCH")
"""


@pytest.mark.parametrize(
    "args",
    [
        ["list"],
        ["table"],
        ["table", "--format", "csv"],
        ["best"],
        ["plot"],
        ["report"],
    ],
)
def test_reading_commands_do_not_import_torch(smoke_store, tmp_path, args):  # noqa: F811
    extra = ["-o", str(tmp_path / "r.html")] if args == ["report"] else []
    if args == ["plot"]:
        extra = ["-o", str(tmp_path / "figs")]
    cmd = [sys.executable, "-c", CODE, *args, *extra, "--tracking-uri", smoke_store.uri]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "NO-TORCH", out.stdout + out.stderr


def test_ui_module_does_not_import_torch():
    code = "import sys, orchestrator.ui; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
