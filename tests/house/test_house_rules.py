"""The house rules, checked by the tests (so CI enforces them): ruff's lint rules as
pyproject.toml selects them and its formatting, over everything we ship and test; mypy clean; no
function over 60 lines and no module over 400 in the product's code; no import cycles among its
modules; each package imports only the packages below it; every package installs under
resnet_deploy."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ruff_finds_nothing():
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    proc = subprocess.run(
        [ruff, "check", "--no-cache", "--output-format", "concise", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_code_is_formatted():
    """ruff format, with pyproject's settings (the files bundles carry keep their bytes)."""
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    proc = subprocess.run(
        [ruff, "format", "--check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_finds_nothing():
    """The product's code type-checks with the settings in pyproject's [tool.mypy]."""
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-1000:]


OURS = ("resnet_deploy", "targets", "calibration")
INSTALLED_ROOTS = ("resnet_deploy", "resnet_deploy.targets", "resnet_deploy.calibration")
MAX_FUNCTION, MAX_MODULE = 60, 400  # lines: a function reads on one screen, a module is one concern


def _sources() -> list[Path]:
    """The product's code (tests and benchmarks are not held to these sizes)."""
    return sorted([*(p for pkg in OURS for p in (ROOT / pkg).rglob("*.py")), ROOT / "cli.py"])


def _module(path: Path) -> str:
    """The module's installed name (targets/ and calibration/ install under resnet_deploy)."""
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    if parts and parts[0] in ("targets", "calibration"):
        parts = ("resnet_deploy", *parts)
    return ".".join(parts)


def test_functions_and_modules_stay_small():
    import ast

    long_functions, long_modules = [], []
    for path in _sources():
        text = path.read_text()
        if len(text.splitlines()) > MAX_MODULE:
            long_modules.append(str(path.relative_to(ROOT)))
        for node in ast.walk(ast.parse(text)):
            if (
                isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                and node.end_lineno - node.lineno + 1 > MAX_FUNCTION
            ):
                long_functions.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")
    assert not long_functions and not long_modules, (long_functions, long_modules)


def _imports(path: Path, known: set[str]) -> set[str]:
    """Our modules that `path` imports anywhere (lazy imports inside functions count too)."""
    import ast

    me = _module(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            names = [f"{base}.{a.name}" for a in node.names] + [base]
        for n in names:
            while n and n not in known:
                n = n.rpartition(".")[0]
            if n and n != me:
                found.add(n)
    return found


def test_no_import_cycles():
    files = [p for p in _sources() if p.relative_to(ROOT).parts[0] in OURS]
    known = {_module(p) for p in files}
    graph = {_module(p): _imports(p, known) for p in files}
    for pkg in list(graph):  # a package's __init__ importing its own modules is not a cycle through them
        graph[pkg] = {m for m in graph[pkg] if not m.startswith(pkg + ".")} if pkg in INSTALLED_ROOTS else graph[pkg]
    state: dict[str, int] = {}
    cycles = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                cycles.append(stack[stack.index(n) :] + [n])
            elif n not in state:
                visit(n, [*stack, n])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, cycles


def test_every_package_is_installed_under_resnet_deploy_only():
    """pyproject lists every package folder (a missing one is absent from a wheel install), and
    nothing installs under a generic top-level name."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {_module(p) for pkg in OURS for p in (ROOT / pkg).rglob("__init__.py")}
    assert listed == folders, listed ^ folders
    assert all(n == "resnet_deploy" or n.startswith("resnet_deploy.") for n in listed)


# Which of our packages each package may import (besides the core modules at the top of
# resnet_deploy/ and portable/): the flows run one way, export never calls what drives it
# (the accuracy budget, parity, packaging), and the CLI is nobody's dependency.
ALLOWED = {
    "models": set(),
    "inputs": set(),
    "store": set(),
    "backend": {"store", "measure"},  # Runner.throughput's default is measure's one driver
    "exporting": {"backend", "inputs", "models", "store"},
    "measure": {"backend", "exporting", "models", "store"},
    "evaluate": {"backend", "exporting", "inputs", "measure", "models", "store"},
    "quantize": {"backend", "exporting", "inputs", "measure", "store"},
    "ship": {"backend", "evaluate", "exporting", "measure", "store"},
    "reporting": {"evaluate", "measure", "models", "store"},
    "cli": {
        "backend",
        "evaluate",
        "exporting",
        "inputs",
        "measure",
        "models",
        "quantize",
        "reporting",
        "ship",
        "store",
    },
}


def test_packages_depend_one_way():
    files = [p for p in _sources() if p.relative_to(ROOT).parts[0] in OURS]
    known = {_module(p) for p in files}
    wrong = []
    for p in files:
        parts = _module(p).split(".")
        if len(parts) < 2 or parts[1] not in ALLOWED:
            continue
        for m in _imports(p, known):
            used = m.split(".")
            if len(used) > 1 and used[1] in ALLOWED and used[1] != parts[1] and used[1] not in ALLOWED[parts[1]]:
                wrong.append(f"{_module(p)} imports {m}")
    assert not wrong, wrong
