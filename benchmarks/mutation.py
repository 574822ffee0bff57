"""Mutation testing of the numpy core (metrics, int8 I/O, bundle integrity and signature, the
latency protocol, the device-profile rule, the safe names, the self-test's manifest checks, the
machine limits), the gate's comparison, the tolerance table and the CLI's exit mapping, with
mutmut (not part of the default test run).

    python benchmarks/mutation.py [--max-children 2] [--tests-rev REV]

--tests-rev REV scores the same modules against the unit tests as they were at REV (the
"before" of a change to the tests; a test file that did not exist then is left out).

Copies the tracked files into a temporary folder (mutmut writes `mutants/` where it runs),
runs `mutmut run` over MODULES with the fast unit tests in TESTS, and prints, per module, the
mutants killed, survived and the score; then every surviving mutant's diff, to read and either
kill with a test or explain. mutmut 3 mutates code inside functions only.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULES = [
    "resnet_deploy/portable/metrics.py",
    "resnet_deploy/portable/quantio.py",
    "resnet_deploy/portable/integrity.py",
    "resnet_deploy/portable/protocol.py",
    "resnet_deploy/portable/device.py",
    "resnet_deploy/portable/names.py",
    "resnet_deploy/portable/checks.py",
    "resnet_deploy/portable/limits.py",
    "resnet_deploy/evaluate/gate.py",
    "resnet_deploy/evaluate/tolerances.py",
    "resnet_deploy/exits.py",
]
TESTS = ["tests/portable/test_portable.py", "tests/evaluate/test_core.py", "tests/portable/test_rules.py"]

CONFIG = """
[tool.mutmut]
paths_to_mutate = {modules}
tests_dir = {tests}
also_copy = ["resnet_deploy", "targets", "calibration", "tests", "cli.py"]
pytest_add_cli_args = ["-p", "no:randomly", "-p", "no:cacheprovider", "-q", "-n", "0"]
"""


def _tests_at(rev: str, dest: Path) -> list[str]:
    """Replace TESTS in dest with their versions at rev; return those that existed."""
    kept = []
    for t in TESTS:
        old = subprocess.run(["git", "show", f"{rev}:{t}"], cwd=ROOT, capture_output=True, text=True)
        if old.returncode == 0:
            (dest / t).write_text(old.stdout)
            kept.append(t)
        else:
            (dest / t).unlink()
    return kept


def _copy_repo(dest: Path, tests: list[str]) -> None:
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        (dest / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, dest / f)
    text = (dest / "pyproject.toml").read_text()
    fmt = lambda xs: "[" + ", ".join(f'"{x}"' for x in xs) + "]"  # noqa: E731
    (dest / "pyproject.toml").write_text(text + CONFIG.format(modules=fmt(MODULES), tests=fmt(tests)))


def _module_of(mutant: str) -> str:
    """'resnet_deploy.portable.metrics.x_compare__mutmut_3' -> 'resnet_deploy/portable/metrics.py'."""
    dotted = mutant.split(".x")[0] if ".x" in mutant else mutant.rsplit(".", 1)[0]
    return dotted.replace(".", "/") + ".py"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--max-children", type=int, default=2)
    p.add_argument("--tests-rev", default=None, help="score against the unit tests as they were at this git revision")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="mutation-") as tmp:
        work = Path(tmp)
        tests = TESTS
        if args.tests_rev:
            _copy_repo(work, [])
            tests = _tests_at(args.tests_rev, work)
            print(f"unit tests as of {args.tests_rev}: {', '.join(tests)}\n")
        _copy_repo(work, tests)
        if args.tests_rev:
            _tests_at(args.tests_rev, work)
        run = subprocess.run(
            [sys.executable, "-m", "mutmut", "run", "--max-children", str(args.max_children)],
            cwd=work,
            capture_output=True,
            text=True,
        )
        if run.returncode != 0:
            sys.exit(f"mutmut run failed ({run.returncode}):\n{(run.stdout + run.stderr)[-3000:]}")
        res = subprocess.run(
            [sys.executable, "-m", "mutmut", "results", "--all", "true"], cwd=work, capture_output=True, text=True
        )
        status: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        survivors = []
        for line in res.stdout.splitlines():
            m = re.match(r"\s*([\w.]+__mutmut_\d+): (.+)", line)
            if not m:
                continue
            name, state = m.group(1), m.group(2).strip()
            status[_module_of(name)][state] += 1
            if state == "survived":
                survivors.append(name)
        print("| module | mutants | killed | survived | other | score |\n|---|---|---|---|---|---|")
        for mod in MODULES:
            s = status.get(mod, {})
            total, killed, surv = sum(s.values()), s.get("killed", 0), s.get("survived", 0)
            other = total - killed - surv
            score = f"{100 * killed / (killed + surv):.1f}%" if killed + surv else "-"
            print(f"| {mod} | {total} | {killed} | {surv} | {other} | {score} |")
        for name in survivors:
            diff = subprocess.run(
                [sys.executable, "-m", "mutmut", "show", name], cwd=work, capture_output=True, text=True
            ).stdout
            print(f"\n--- survived: {name}\n{diff.strip()}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from results import recorded

    with recorded("mutation"):
        main()
