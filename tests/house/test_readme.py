"""README's and the docs' promises about themselves: the two commands are what CI runs, the front
page stays short, every exit code is listed, and no page speaks of "this machine" or of how the
code was developed (a number names its command and CPU; history lives in git)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from resnet_deploy.portable import constants

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
CI = (ROOT / ".ci" / "run").read_text()
PAGES = {p.name: p.read_text() for p in sorted((ROOT / "docs").glob("*.md"))}


def test_the_two_commands_are_what_ci_runs():
    assert 'pip install -e ".[dev]" && python cli.py export --target tflite' in README
    assert "\n    python -m pytest\n" in README
    assert 'python -m pip install -e ".[dev]"' in CI and CI.rstrip().endswith("python -m pytest")
    assert "mkdocs build --strict" in CI


def test_the_front_page_is_short():
    assert len(README.splitlines()) <= 150


@pytest.mark.parametrize("name", ["README.md", *PAGES])
def test_no_history_and_no_unattributed_claims_about_the_machine(name):
    text = README if name == "README.md" else PAGES[name]
    prose = re.sub(r"`[^`]*`", "", text)  # code spans quote our own output (error lines), not claims
    for phrase in (
        r"\bthis machine\b",
        r"\bmeasured here\b",
        r"\bhere on\b",
        r"\bsessions? \d",
        r"\bissue #?\d",
        r"\bbefore-rev [0-9a-f]",
    ):
        assert not re.search(phrase, prose, re.I), (name, phrase)
    hashes = [
        w
        for w in re.findall(r"\b[0-9a-f]{7,12}\b", text)  # a git short hash: hex with letters and digits
        if re.search(r"[a-f]", w) and re.search(r"\d", w)
    ]
    assert not hashes, (name, hashes)


def test_every_exit_code_is_in_the_readme_and_the_troubleshooting_page():
    codes = {v for k, v in vars(constants).items() if k.startswith("EXIT_")}
    for text in (README, PAGES["troubleshooting.md"]):
        listed = {int(c) for c in re.findall(r"^\| (\d+) \|", text, re.M)}
        assert codes <= listed, codes - listed


def test_no_development_history_in_code_or_tests():
    """Comments, docstrings and tests speak of the product: no issue or session numbers."""
    import subprocess

    files = subprocess.run(
        ["git", "ls-files", "*.py", "*.toml", "*.yml", "*.md"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    found = []
    for f in files:
        if f == "CHANGELOG.md":
            continue
        for n, line in enumerate((ROOT / f).read_text(errors="replace").splitlines(), 1):
            if re.search(r"\b(issue|session)s? #?\d", line, re.I) and "/issues/" not in line:
                found.append(f"{f}:{n}: {line.strip()[:80]}")
    assert not found, found
