"""The architecture DESIGN.md asks for, checked on the source (a reviewer's rules, as tests):

- one concept per module: no module of model/ or orchestrator/ over 400 lines;
- no import cycle between project modules, through package faces too (importing `pkg.mod`
  runs `pkg/__init__` first); results/ never imports sweeps/ or execution/, and never writes
  to the store; only sweeps/ imports execution/;
- no function over 60 lines without a `# long:` comment saying why;
- mlflow only under orchestrator/tracking/, optuna only under orchestrator/sweeps/search/ and the
  storage adapter (studies/), model/ nothing of the orchestration;
- run states are an enum: MLflow status literals only in the tracking schema;
- no private attribute of another object (Optuna's or anyone's: `x._name`,
  `getattr(x, "_name")`, `from optuna._x import`) in any project module, but for the few
  names of ALLOWED_PRIVATE, each with its reason; no module-level mutable state;
- no deprecated Optuna API: pyproject.toml's filterwarnings turn Optuna's deprecation
  warnings into errors, so any test that reaches one fails (checked here too);
- tests mirror the packages: tests/<package path>/test_<module>.py names a real module or
  package, slow (`@pytest.mark.slow`) tests live in tests/e2e/ only;
- `sweep --help` imports nothing heavy.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("model", "orchestrator")
MAX_LINES = 400


def sources(package: str = "orchestrator", root: Path = ROOT) -> list[Path]:
    return sorted((root / package).rglob("*.py"))


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports(path: Path, root: Path = ROOT, known: set[str] | None = None) -> set[str]:
    """Absolute names of every module `path` imports (top level and inside functions).

    `from pkg import name` is an import of the submodule `pkg.name` when there is one (in
    `known`), else of `pkg` itself: the package's face, which defines `name`."""
    here = module_name(path, root).split(".")
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
            subs = {f"{mod}.{a.name}" for a in node.names}
            found |= subs
            if known is None or not subs <= known:
                found.add(mod)  # a name the package's face defines
    return found


def project_graph(root: Path = ROOT, packages=PACKAGES) -> dict[str, set[str]]:
    """Module -> the project modules that importing it runs first. Importing `a.b.c` runs
    `a/__init__` and `a/b/__init__` too (the faces of its packages), unless the importer
    is inside that package already (its face ran before it)."""
    names = {module_name(p, root): p for pkg in packages for p in sources(pkg, root)}
    graph = {}
    for name, path in names.items():
        deps = set()
        for d in imports(path, root, set(names)):
            if d not in names or d == name:
                continue
            deps.add(d)
            parts = d.split(".")
            for i in range(1, len(parts)):
                face = ".".join(parts[:i])
                if face in names and not (name + ".").startswith(face + "."):
                    deps.add(face)
        graph[name] = deps
    return graph


def cycles_in(graph: dict[str, set[str]]) -> list[list[str]]:
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
    return cycles


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


def test_the_concepts_are_packages():
    for pkg in ("sweeps", "sweeps/search", "execution", "results", "tracking", "cli"):
        assert (ROOT / "orchestrator" / pkg / "__init__.py").is_file(), pkg
        assert not (ROOT / "orchestrator" / f"{pkg}.py").exists(), pkg


def test_no_import_cycles():
    """Through package faces too: a module that imports its own package's face (for a name
    the face defines) while the face imports that module is a cycle."""
    assert cycles_in(project_graph()) == []


PLANTED = {
    # a face that imports its module, whose module takes a name from the face
    "face": {"__init__.py": "from .mod import f\nX = 1\n", "mod.py": "from . import X\n"},
    # the same through an absolute import of the package
    "absface": {
        "__init__.py": "from absface.mod import f\nX = 1\n",
        "mod.py": "import absface\n",
    },
    # a module outside that imports pkg.mod, which runs pkg's face, which imports it back
    "outer": {
        "__init__.py": "",
        "a.py": "from outer.pkg.mod import f\n",
        "pkg/__init__.py": "from outer import a\n",
        "pkg/mod.py": "def f(): ...\n",
    },
}


@pytest.mark.parametrize("name", sorted(PLANTED))
def test_the_cycle_check_sees_a_cycle_planted_through_a_package_face(tmp_path, name):
    for rel_path, text in PLANTED[name].items():
        path = tmp_path / name / rel_path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert cycles_in(project_graph(tmp_path, (name,))) != []


def test_a_package_face_re_exporting_its_modules_is_no_cycle(tmp_path):
    files = {"pkg/__init__.py": "from .a import f\nfrom .b import g\n",
             "pkg/a.py": "def f(): ...\n", "pkg/b.py": "from .a import f\ndef g(): ...\n"}  # fmt: skip
    for rel_path, text in files.items():
        (tmp_path / rel_path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel_path).write_text(text, encoding="utf-8")
    assert cycles_in(project_graph(tmp_path, ("pkg",))) == []


def _under(name: str, *packages: str) -> bool:
    return any(
        name == f"orchestrator.{p}" or name.startswith(f"orchestrator.{p}.") for p in packages
    )


def test_results_never_import_the_sweeps_or_the_execution_layer():
    bad = {
        rel(p): sorted(d for d in imports(p) if _under(d, "sweeps", "execution"))
        for p in (ROOT / "orchestrator" / "results").rglob("*.py")
    }
    assert {k: v for k, v in bad.items() if v} == {}


def test_only_the_sweeps_import_the_execution_layer():
    """What to train (sweeps/) apart from how and where (execution/): the CLI, results/ and
    the adapters never reach the execution layer; only sweeps/ (and execution/ itself) do."""
    bad = {
        rel(p): sorted(d for d in imports(p) if _under(d, "execution"))
        for p in sources()
        if not _under(module_name(p), "sweeps", "execution")
    }
    assert {k: v for k, v in bad.items() if v} == {}


STORE_WRITES = {"set_tag", "set_tags", "end_run", "create_run", "delete_run", "reopen",
                "log_artifact", "log_artifacts", "log_text", "log_history", "log_dataset",
                "log_metric", "log_metrics", "log_param", "log_params", "log_batch"}  # fmt: skip


def store_writes(path: Path) -> list[str]:
    return [
        f"{node.lineno}: {node.func.attr}"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and (node.func.attr in STORE_WRITES or node.func.attr.startswith("log_"))
    ]


def test_results_never_write_to_the_store():
    """results/ reads the store and builds tables, figures and reports; attaching them to a
    parent run is the sweep's (sweeps/attach.py)."""
    found = {rel(p): store_writes(p) for p in (ROOT / "orchestrator" / "results").rglob("*.py")}
    assert {k: v for k, v in found.items() if v} == {}


MAX_FUNCTION_LINES = 60
LONG_REASON = "# long:"  # a function over the limit says why, in a comment in its body


def long_functions(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    out = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            n = node.end_lineno - node.lineno + 1
            body = lines[node.lineno - 1 : node.end_lineno]
            if n > MAX_FUNCTION_LINES and not any(LONG_REASON in ln for ln in body):
                out.append(f"{node.name} ({n} lines)")
    return out


def test_no_function_over_60_lines_without_a_reason():
    found = {rel(p): long_functions(p) for pkg in PACKAGES for p in sources(pkg)}
    assert {k: v for k, v in found.items() if v} == {}


def test_mlflow_only_in_tracking_optuna_only_in_search_and_the_storage_adapter():
    mlflow = sorted(rel(p) for p in sources() if "mlflow" in roots(p))
    assert mlflow and all(p.startswith("orchestrator/tracking/") for p in mlflow), mlflow
    optuna = sorted(rel(p) for p in sources() if "optuna" in roots(p))
    allowed = ("orchestrator/sweeps/search/", "orchestrator/studies/")
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


# Names that start with an underscore and are public all the same (documented API), or a
# private one used knowingly, with the reason.
ALLOWED_PRIVATE = {
    "os._exit": "the documented way out of a forked child",
    "sys._getframe": "documented CPython API",
    "torch._C._cpu._get_cpu_capability": "model/train.py: the CPU's flags, with a "
    "/proc/cpuinfo fallback when torch moves it",
}
NAMEDTUPLE_API = {"_asdict", "_replace", "_fields", "_make", "_field_defaults"}
ATTR_FUNCTIONS = {"getattr", "setattr", "hasattr", "delattr"}


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_uses(path: Path) -> list[str]:
    """`obj._name` on anything but self/cls, `getattr(obj, "_name")` and the like, and
    imports of private modules or names from packages that are not ours."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    inner = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    uses = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and id(node) not in inner:  # a whole a.b.c chain
            chain = ast.unparse(node)
            link = node
            while isinstance(link, ast.Attribute) and chain not in ALLOWED_PRIVATE:
                own = isinstance(link.value, ast.Name) and link.value.id in ("self", "cls")
                if _private(link.attr) and link.attr not in NAMEDTUPLE_API and not own:
                    uses.append(f"{node.lineno}: {chain}")
                    break
                link = link.value
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ATTR_FUNCTIONS
            and len(node.args) > 1
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
            and _private(node.args[1].value)
        ):
            uses.append(f"{node.lineno}: {node.func.id}(..., {node.args[1].value!r})")
        elif isinstance(node, ast.ImportFrom) and not node.level:
            module = node.module or ""
            if module.split(".")[0] in PACKAGES:
                continue  # our own modules may share their private helpers
            names = [*module.split("."), *(a.name for a in node.names)]
            if any(_private(n) for n in names):
                uses.append(f"{node.lineno}: from {module} import ...")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] not in PACKAGES and any(
                    _private(n) for n in alias.name.split(".")
                ):
                    uses.append(f"{node.lineno}: import {alias.name}")
    return uses


def test_no_private_attributes_of_other_objects():
    """Optuna's above all (issue 9: 13 of them once, in search.py); no module needs one now,
    so there is no compatibility module either."""
    users = {rel(p): private_uses(p) for pkg in PACKAGES for p in sources(pkg)}
    assert {k: v for k, v in users.items() if v} == {}


MUTABLE_CALLS = {
    "dict",
    "list",
    "set",
    "bytearray",
    "defaultdict",
    "OrderedDict",
    "Counter",
    "deque",
}
MUTATORS = {
    "append", "extend", "insert", "remove", "pop", "popitem", "clear", "update", "setdefault",
    "add", "discard", "sort", "reverse", "appendleft", "extendleft",
}  # fmt: skip
CONSTANT = re.compile(r"_?[A-Z][A-Z0-9_]*")


def _mutable(value: ast.expr | None) -> bool:
    if isinstance(value, ast.Dict | ast.List | ast.Set | ast.DictComp | ast.ListComp | ast.SetComp):
        return True
    if isinstance(value, ast.Call):
        f = value.func
        name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
        return name in MUTABLE_CALLS
    return False


def module_containers(path: Path) -> list[tuple[int, str]]:
    """(line, name) of every module-level assignment of a mutable container."""
    found = []
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign | ast.AnnAssign) and _mutable(node.value):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            found += [(node.lineno, t.id) for t in targets if isinstance(t, ast.Name)]
    return found


def mutations(path: Path, names: set[str]) -> list[str]:
    """Writes into one of `names` (bare or as module.NAME) and `global` statements."""
    out = []

    def named(node: ast.expr) -> str | None:
        if isinstance(node, ast.Name) and node.id in names:
            return node.id
        if isinstance(node, ast.Attribute) and node.attr in names:
            return node.attr
        return None

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Global):
            out.append(f"{node.lineno}: global {', '.join(node.names)}")
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store | ast.Del):
            if name := named(node.value):
                out.append(f"{node.lineno}: {name}[...] written")
        elif isinstance(node, ast.AugAssign) and (name := named(node.target)):
            out.append(f"{node.lineno}: {name} augmented")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in MUTATORS
            and (name := named(node.func.value))
        ):
            out.append(f"{node.lineno}: {name}.{node.func.attr}()")
    return out


def test_no_module_level_mutable_state():
    """A module-level dict/list/set is a constant (ALL_CAPS, `__all__`) that nothing writes
    into, anywhere; a cache, a registry filled at run time or a `global` is state."""
    containers = {rel(p): module_containers(p) for pkg in PACKAGES for p in sources(pkg)}
    state = {
        path: [f"{line}: {name}" for line, name in found if not CONSTANT.fullmatch(name)]
        for path, found in containers.items()
    }
    state = {k: v for k, v in state.items() if v and not all(x.endswith("__all__") for x in v)}
    assert state == {}
    constants = {name for found in containers.values() for _, name in found}
    written = {rel(p): mutations(p, constants) for pkg in PACKAGES for p in sources(pkg)}
    assert {k: v for k, v in written.items() if v} == {}


def test_deprecated_optuna_api_fails_the_tests():
    """pyproject.toml's last filterwarnings entry: Optuna's deprecation warnings are errors."""
    import optuna

    with pytest.raises(FutureWarning, match="has been deprecated in v"):
        optuna.distributions.UniformDistribution(0.0, 1.0)


def test_tests_mirror_the_packages():
    for pkg in ("sweeps", "sweeps/search", "execution", "results", "tracking", "cli"):
        folder = ROOT / "tests" / "orchestrator" / pkg
        assert folder.is_dir() and list(folder.glob("test_*.py")), pkg
    assert list((ROOT / "tests" / "e2e").glob("test_*.py"))  # slow end-to-end tests


def mirrored(test: Path) -> bool:
    """tests/<pkg path>/test_<name>[_<what>].py names the module <pkg path>/<name>.py, the
    package <pkg path>/<name>/, or the package <pkg path> itself (tests of it as a whole)."""
    folder = ROOT / test.parent.relative_to(ROOT / "tests")
    stem = test.stem.removeprefix("test_")
    names = {p.stem for p in folder.glob("*.py") if p.name != "__init__.py"}
    names |= {p.name for p in folder.iterdir() if (p / "__init__.py").is_file()}
    names.add(folder.name)
    return any(stem == n or stem.startswith(n + "_") for n in names)


def test_every_test_file_names_a_real_module_or_package():
    tests = [t for pkg in PACKAGES for t in (ROOT / "tests" / pkg).rglob("test_*.py")]
    assert tests
    assert sorted(rel(t) for t in tests if not mirrored(t)) == []


def test_slow_tests_live_only_in_e2e():
    """`pytest.mark.slow` anywhere (decorator, pytestmark, pytest.param) outside tests/e2e/."""
    e2e = ROOT / "tests" / "e2e"
    slow = sorted(
        f"{rel(path)}:{node.lineno}"
        for path in (ROOT / "tests").rglob("*.py")
        if e2e not in path.parents
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Attribute)
        and node.attr == "slow"
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "mark"
    )
    assert slow == []


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
