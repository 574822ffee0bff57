"""The CLI: parse options, build one request, call the library, format what it returns, and
turn typed errors into one `error:` line and an exit code. No work happens here; the commands
live in make.py, check.py and ship.py, registered on the group in group.py."""

from __future__ import annotations

import click

from resnet_deploy.cli import check, make, ship  # noqa: F401 - importing them registers their commands
from resnet_deploy.cli.group import EXAMPLE, cli
from resnet_deploy.errors import DeployError

__all__ = ["cli", "main"]


@cli.command("list", epilog=EXAMPLE.format("python cli.py list"))
def list_cmd() -> None:
    """Show targets, models and precisions."""
    from resnet_deploy.config import Precision
    from resnet_deploy.models.source import BUILTIN_MODELS
    from resnet_deploy.backend.target import available_targets, get_target

    click.echo("targets:")
    for name in available_targets():
        try:
            t = get_target(name)
            click.echo(f"  {name:9s} precisions: {', '.join(p.value for p in t.precisions):28s} {t.description}")
        except (ImportError, DeployError) as e:
            click.echo(f"  {name:9s} unavailable: {e}")
    click.echo("models:")
    for spec in BUILTIN_MODELS.values():
        click.echo(f"  {spec.name:18s} {spec.description}")
    click.echo("precisions: " + ", ".join(p.value for p in Precision))


def main(argv: list[str] | None = None) -> None:
    """Entry point: one line and a non-zero exit for every user error, no traceback."""
    from resnet_deploy.exits import run
    from resnet_deploy.store.fsutil import private_tempdir
    from resnet_deploy.exporting.memory import quick_exit

    quick_exit()
    if argv is None:  # a process of its own (tests call main() in theirs): temp files in a folder it owns
        private_tempdir()
    run(cli, argv, "resnet-deploy")
