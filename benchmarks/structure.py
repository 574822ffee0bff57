"""How the code is laid out, measured from the source alone (nothing is run): modules per
folder, the longest function, and how many of our modules each CLI command loads (module-level
imports followed transitively from the command's own imports, parent packages included).

    python benchmarks/structure.py [--all-imports]

--all-imports also follows imports inside functions (what a command could reach, not what it loads).
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OURS = ("resnet_deploy", "targets", "calibration")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    if parts[0] in ("targets", "calibration"):  # installed under resnet_deploy
        parts = ["resnet_deploy", *parts]
    return ".".join(parts)


def imports(path: Path, known: set[str], everywhere: bool) -> set[str]:
    tree = ast.parse(path.read_text())
    nodes = (
        list(ast.walk(tree)) if everywhere else [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    )
    names = set()
    for n in nodes:
        if isinstance(n, ast.Import):
            names |= {a.name for a in n.names}
        elif isinstance(n, ast.ImportFrom) and n.module and not n.level:
            names |= {n.module} | {f"{n.module}.{a.name}" for a in n.names}
    found = set()
    for name in names:
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name:
            found.add(name)
    return found


def reached(start: set[str], graph: dict[str, set[str]]) -> set[str]:
    seen, todo = set(), list(start)
    while todo:
        m = todo.pop()
        if m in seen or m not in graph:
            continue
        seen.add(m)
        parts = m.split(".")
        todo += [".".join(parts[:k]) for k in range(1, len(parts))]  # a package's __init__ runs first
        todo += graph[m]
    return seen


def commands(graph: dict[str, set[str]], files: dict[str, Path]) -> dict[str, tuple[int, int]]:
    """Command function -> (modules, package __init__s) it loads: the CLI's group and the
    command's own imports."""
    out = {}
    for mod in [m for m in files if m.startswith("resnet_deploy.cli")]:
        tree = ast.parse(files[mod].read_text())
        for fn in [n for n in tree.body if isinstance(n, ast.FunctionDef)]:
            if not any("command" in ast.unparse(d) for d in fn.decorator_list):
                continue
            start = {mod, "resnet_deploy.cli.main"}
            for n in ast.walk(fn):
                if isinstance(n, ast.ImportFrom) and n.module:
                    start |= {f"{n.module}.{a.name}" if f"{n.module}.{a.name}" in files else n.module for a in n.names}
            loads = reached(start, graph)
            inits = len([m for m in loads if files[m].name == "__init__.py"])
            out[fn.name] = (len(loads) - inits, inits)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--all-imports", action="store_true")
    args = ap.parse_args()
    paths = [p for top in OURS for p in (ROOT / top).rglob("*.py")]
    files = {module_name(p): p for p in paths}
    graph = {m: imports(p, set(files), args.all_imports) for m, p in files.items()}
    folders = Counter(str(p.parent.relative_to(ROOT)) for p in paths)
    longest = max(
        (n.end_lineno - n.lineno + 1, f"{module_name(p)}.{n.name}")
        for p in paths
        for n in ast.walk(ast.parse(p.read_text()))
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
    )
    inits = len([m for m in files if files[m].name == "__init__.py"])
    print(f"modules: {len(files) - inits} and {inits} package __init__s")
    print(f"longest function: {longest[1]} ({longest[0]} lines)\n")
    print("| folder | modules |\n|---|---|")
    for folder, n in sorted(folders.items()):
        print(f"| {folder} | {n} |")
    what = "reachable (imports inside functions too)" if args.all_imports else "loaded"
    print(f"\n| command | our modules {what} (of {len(files) - inits}) | package __init__s |\n|---|---|---|")
    for name, (n, i) in sorted(commands(graph, files).items()):
        print(f"| {name} | {n} | {i} |")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from results import recorded

    with recorded("structure"):
        main()
