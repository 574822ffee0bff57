"""Running the CLI in the test's own process, and the short timing protocol tests use."""

from __future__ import annotations

from resnet_deploy.cli.main import main

QUICK = ["--warmup-s", "0.1", "--seconds", "0.3"]  # timing that only has to run, not to be precise


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        main(list(argv))
        code = 0
    except SystemExit as e:
        code = e.code or 0
    out, err = capsys.readouterr()
    return code, out, err
