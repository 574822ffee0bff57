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
@click.option("--json", "as_json", is_flag=True, help="Print targets, models and precisions as JSON.")
def list_cmd(as_json: bool) -> None:
    """Show targets, models and precisions."""
    from resnet_deploy.backend.target import available_targets, get_target
    from resnet_deploy.cli.group import as_json_text
    from resnet_deploy.config import Precision
    from resnet_deploy.models.source import BUILTIN_MODELS

    targets: list[dict] = []
    for name in available_targets():
        try:
            found = get_target(name)
            precs = [p.value for p in found.precisions]
            targets.append({"name": name, "precisions": precs, "about": found.description})
        except (ImportError, DeployError) as e:
            targets.append({"name": name, "unavailable": str(e)})
    models = [{"name": spec.name, "about": spec.description} for spec in BUILTIN_MODELS.values()]
    precisions = [p.value for p in Precision]
    if as_json:
        click.echo(as_json_text({"targets": targets, "models": models, "precisions": precisions}))
        return
    click.echo("targets:")
    for t in targets:
        if "unavailable" in t:
            click.echo(f"  {t['name']:9s} unavailable: {t['unavailable']}")
        else:
            click.echo(f"  {t['name']:9s} precisions: {', '.join(t['precisions']):28s} {t['about']}")
    click.echo("models:")
    for m in models:
        click.echo(f"  {m['name']:18s} {m['about']}")
    click.echo("precisions: " + ", ".join(precisions))


def main(argv: list[str] | None = None) -> None:
    """Entry point: one line and a non-zero exit for every user error, no traceback."""
    from resnet_deploy.exits import run
    from resnet_deploy.store.fsutil import private_tempdir
    from resnet_deploy.exporting.memory import quick_exit

    quick_exit()
    if argv is None:  # a process of its own (tests call main() in theirs): temp files in a folder it owns
        private_tempdir()
    run(cli, argv, "resnet-deploy")
