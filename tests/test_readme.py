"""README's promises about itself: the two commands, and no claim about "this CPU" that the CPU
the tests run on could contradict (every measured number names the CPU it came from)."""
from __future__ import annotations

import re
from pathlib import Path

from resnet_deploy.cpu import cpu_info

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
CI = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()


def test_the_two_commands_are_what_ci_runs():
    assert 'pip install -e ".[dev]" && python cli.py export --target tflite' in README
    assert "\n    python -m pytest\n" in README
    assert 'python -m pip install -e ".[dev]"' in CI and CI.rstrip().endswith("python -m pytest")


def test_no_unattributed_claims_about_the_machine():
    """Numbers drift with the CPU; a sentence about "this machine" goes stale the day CI moves."""
    for phrase in (r"\bthis machine\b", r"\bthis CPU\b", r"\bmeasured here\b", r"\bhere on\b"):
        assert not re.search(phrase, README, re.I), phrase


def test_features_the_readme_says_a_cpu_lacks_are_absent_on_the_cpu_it_names():
    """The parity table's CPU line ("Zen 3: AVX2, no AVX-512, no VNNI") is checked against this
    CPU when this is that CPU."""
    m = re.search(r"on an AMD EPYC \(Zen 3: ([^)]*)\)", README)
    assert m, "the parity table names its CPU"
    info = cpu_info()
    if info["model"] == "AMD EPYC" and not info["features"]["avx512f"]:
        claims = m.group(1)
        assert "AVX2" in claims and info["features"]["avx2"]
        assert "no VNNI" in claims and not (info["features"]["avx512_vnni"] or info["features"]["avx_vnni"])
