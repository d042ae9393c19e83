"""The layering DESIGN.md asks for, checked on the source: model/ knows nothing of
MLflow, Optuna or Typer; only orchestrator/tracking.py imports mlflow; the CLI module
imports no heavy package at start-up."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_model_imports_no_orchestration_packages():
    for path in (ROOT / "model").glob("*.py"):
        assert not imported_roots(path) & {"mlflow", "optuna", "typer", "pandas", "orchestrator"}, (
            path.name
        )


def test_only_tracking_imports_mlflow():
    users = sorted(
        p.name for p in (ROOT / "orchestrator").glob("*.py") if "mlflow" in imported_roots(p)
    )
    assert users == ["tracking.py"]
    # nor reaches around it to the MlflowClient
    leaks = sorted(
        p.name
        for p in (ROOT / "orchestrator").glob("*.py")
        if ".client." in p.read_text(encoding="utf-8")
    )
    assert leaks == ["tracking.py"]


def test_cli_start_up_imports_nothing_heavy():
    code = (
        "import sys, orchestrator.cli\n"
        "heavy = sorted(m for m in ('torch', 'mlflow', 'optuna', 'pandas', 'matplotlib') if m in sys.modules)\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == ""
