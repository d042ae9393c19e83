"""The architecture DESIGN.md asks for, checked on the source (a reviewer's rules, as tests):

- one concept per module: no module of model/ or orchestrator/ over 400 lines;
- no import cycle between project modules; results/ never imports the strategies;
- mlflow only under orchestrator/tracking/, optuna only under orchestrator/search/ and the
  storage adapter (studies.py), model/ nothing of the orchestration;
- run states are an enum: MLflow status literals only in the tracking schema;
- private Optuna attributes only in one commented module (search/_optuna.py);
- tests mirror the packages; `sweep --help` imports nothing heavy.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("model", "orchestrator")
MAX_LINES = 400


def sources(package: str = "orchestrator") -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports(path: Path) -> set[str]:
    """Absolute names of every module `path` imports (top level and inside functions)."""
    here = module_name(path).split(".")
    if path.name != "__init__.py":
        here = here[:-1]  # the package the module is in
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1]
                mod = ".".join([*base, *([node.module] if node.module else [])])
            else:
                mod = node.module or ""
            found.add(mod)
            found |= {f"{mod}.{a.name}" for a in node.names}  # `from pkg import module`
    return found


def project_graph() -> dict[str, set[str]]:
    names = {module_name(p): p for pkg in PACKAGES for p in sources(pkg)}
    graph = {}
    for name, path in names.items():
        deps = {d for d in imports(path) if d in names and d != name}
        graph[name] = deps
    return graph


def roots(path: Path) -> set[str]:
    return {name.split(".")[0] for name in imports(path)}


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def test_no_module_over_400_lines():
    long = {
        rel(p): n
        for pkg in PACKAGES
        for p in sources(pkg)
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def test_search_and_results_are_packages():
    for pkg in ("search", "results", "tracking", "cli"):
        assert (ROOT / "orchestrator" / pkg / "__init__.py").is_file(), pkg
        assert not (ROOT / "orchestrator" / f"{pkg}.py").exists(), pkg


def test_no_import_cycles():
    graph = project_graph()
    # a package's __init__ re-exporting its own modules is not a cycle between concepts
    for name, deps in graph.items():
        graph[name] = {d for d in deps if not name.startswith(d + ".")}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycles.append([*stack[stack.index(dep) :], dep])
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert cycles == []


def test_results_never_import_the_strategies():
    strategies = ("search", "ablate", "baseline", "runner", "confirm")
    bad = {
        rel(p): sorted(d for d in imports(p) if d.split(".")[1:2] and d.split(".")[1] in strategies)
        for p in (ROOT / "orchestrator" / "results").rglob("*.py")
    }
    assert {k: v for k, v in bad.items() if v} == {}


def test_mlflow_only_in_tracking_optuna_only_in_search_and_the_storage_adapter():
    mlflow = sorted(rel(p) for p in sources() if "mlflow" in roots(p))
    assert mlflow and all(p.startswith("orchestrator/tracking/") for p in mlflow), mlflow
    optuna = sorted(rel(p) for p in sources() if "optuna" in roots(p))
    allowed = ("orchestrator/search/", "orchestrator/studies.py")
    assert optuna and all(p.startswith(allowed) for p in optuna), optuna
    # nor does anything reach around the tracker to MLflow's client
    leaks = sorted(rel(p) for p in sources() if ".client." in p.read_text(encoding="utf-8"))
    assert all(p.startswith("orchestrator/tracking/") for p in leaks), leaks


def test_model_imports_no_orchestration_packages():
    for path in sources("model"):
        assert not roots(path) & {"mlflow", "optuna", "typer", "pandas", "orchestrator"}, path


def test_mlflow_statuses_are_written_only_in_the_tracking_schema():
    pattern = re.compile(r"""["'](FINISHED|FAILED|KILLED|RUNNING|SCHEDULED)["']""")
    found = {
        rel(p): len(pattern.findall(p.read_text(encoding="utf-8")))
        for p in sources()
        if rel(p) != "orchestrator/tracking/schema.py"
    }
    assert {k: v for k, v in found.items() if v} == {}
    schema = (ROOT / "orchestrator" / "tracking" / "schema.py").read_text(encoding="utf-8")
    assert 0 < len(pattern.findall(schema)) <= 12  # the one mapping, a handful of literals


def private_optuna_uses(path: Path) -> list[str]:
    """`obj._name` on anything but self/cls, and imports from optuna's private modules."""
    uses = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and node.attr not in ("_replace", "_asdict", "_fields")  # namedtuple's public API
            and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
        ):
            uses.append(f"{node.lineno}: .{node.attr}")
        module = node.module or "" if isinstance(node, ast.ImportFrom) else ""
        if module.startswith("optuna") and any(p.startswith("_") for p in module.split(".")):
            uses.append(f"{node.lineno}: from {module}")
    return uses


def test_private_optuna_attributes_only_in_one_commented_module():
    users = {
        rel(p): private_optuna_uses(p)
        for p in sources()
        if "optuna" in roots(p) or rel(p).startswith("orchestrator/search/")
    }
    outside = {k: v for k, v in users.items() if v and k != "orchestrator/search/_optuna.py"}
    assert outside == {}
    compat = ROOT / "orchestrator" / "search" / "_optuna.py"
    if compat.exists():
        lines = compat.read_text(encoding="utf-8").splitlines()
        assert len(lines) <= 120
        for use in private_optuna_uses(compat):  # every private use carries a comment nearby
            n = int(use.split(":")[0])
            near = lines[max(0, n - 6) : n]
            assert any("#" in ln or '"""' in ln for ln in near), use


def test_tests_mirror_the_packages():
    for pkg in ("search", "results", "tracking", "cli"):
        folder = ROOT / "tests" / "orchestrator" / pkg
        assert folder.is_dir() and list(folder.glob("test_*.py")), pkg
    assert list((ROOT / "tests" / "e2e").glob("test_*.py"))  # slow end-to-end tests


def test_cli_start_up_imports_nothing_heavy():
    code = (
        "import sys, orchestrator.cli\n"
        "heavy = sorted(m for m in ('torch', 'mlflow', 'optuna', 'pandas', 'matplotlib') "
        "if m in sys.modules)\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == ""
