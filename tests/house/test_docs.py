"""The docs cannot rot: every `python cli.py ...` command in README.md and docs/ parses with the
real CLI (every option exists and takes the value shown), every Python example runs against a
real export, and the site builds with `mkdocs build --strict` (no broken link or reference)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PLACEHOLDER = re.compile(r"\|")  # `--target tflite|onnx|...` lists choices: a synopsis, not a command


def _blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, re.S)


def _commands(page: Path) -> list[str]:
    """Every `python cli.py ...` line of the page: fenced bash blocks and 4-space indented lines."""
    text = page.read_text()
    lines = [ln for b in _blocks(text, "bash") for ln in b.replace("\\\n", " ").splitlines()]
    lines += [ln for ln in text.replace("\\\n", " ").splitlines() if ln.startswith("    ")]
    cmds = []
    for ln in lines:
        ln = ln.split(" #")[0].strip()
        for part in ln.split("&&"):
            part = part.strip()
            if part.startswith("python cli.py ") and not PLACEHOLDER.search(part):
                cmds.append(part)
    return cmds


CASES = [(p.name, c) for p in PAGES for c in _commands(p)]


def test_the_docs_show_commands():
    assert len(CASES) > 40 and {name for name, _ in CASES} >= {"README.md", "getting-started.md", "bundles.md"}


@pytest.mark.parametrize("page, command", CASES, ids=[f"{p}: {c[:70]}" for p, c in CASES])
def test_every_documented_command_parses(page, command):
    from resnet_deploy.cli.main import cli

    args = shlex.split(command)[2:]
    with cli.make_context("resnet-deploy", list(args), resilient_parsing=False) as ctx:
        name, sub, rest = cli.resolve_command(ctx, ctx.protected_args + ctx.args)
        try:
            sub.make_context(name, rest, parent=ctx)
        except click.UsageError as e:
            pytest.fail(f"{page}: `{command}`: {e.format_message()}")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A folder holding `artifacts/` from a real `export --target all`, as the examples assume."""
    d = tmp_path_factory.mktemp("docs")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), "export", "--target", "all", "--out", str(d / "artifacts")],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=d,
    )
    assert proc.returncode == 0, proc.stderr
    return d


@pytest.mark.parametrize("page", ["in-your-app.md", "api.md", "plugins.md"])
def test_every_python_example_runs(workspace, page, monkeypatch):
    blocks = _blocks((ROOT / "docs" / page).read_text(), "python")
    assert blocks, page
    monkeypatch.chdir(workspace)
    monkeypatch.syspath_prepend(str(workspace))
    namespace: dict = {"__name__": f"docs_{page}"}
    for code in blocks:  # one page's examples build on each other, as a reader runs them
        exec(compile(code, f"docs/{page}", "exec"), namespace)  # noqa: S102 - our own documentation
    if page == "plugins.md":  # the example target registers and exports like a built-in one
        from resnet_deploy.backend.target import get_target, register, unregister

        register("npy", namespace["NumpyTarget"])
        try:
            assert get_target("npy").name == "npy"
        finally:
            unregister("npy")


def test_the_site_builds_strict(tmp_path):
    mkdocs = shutil.which("mkdocs") or str(Path(sys.executable).parent / "mkdocs")
    proc = subprocess.run(
        [mkdocs, "build", "--strict", "--quiet", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "site" / "api" / "index.html").read_text().count("ExportRequest") >= 2


def test_every_command_helps_with_every_option_and_ends_with_an_example_that_parses():
    from resnet_deploy.cli.main import cli

    for name, cmd in cli.commands.items():
        missing = [p.opts[0] for p in cmd.params if isinstance(p, click.Option) and not p.help]
        assert not missing, (name, missing)
        example = (cmd.epilog or "").strip().splitlines()[-1].strip()
        assert example.startswith(f"python cli.py {name}"), (name, cmd.epilog)
        test_every_documented_command_parses(f"{name} --help", example)
