"""The command group every command registers on, and what they share: the `--help` example
and `--json` output."""

from __future__ import annotations

import click

EXAMPLE = "\b\nExample:\n  {}"  # the last lines of every command's --help


def as_json_text(data) -> str:
    """`--json` output: indented, NaN as null (JSON has no NaN; a reader must never meet a bare one)."""
    import json

    from resnet_deploy.portable.checks import no_nan
    from resnet_deploy.store.record import plain

    return json.dumps(no_nan(plain(data)), indent=2, default=str)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="resnet-deploy")
def cli() -> None:
    """Convert, int8-quantise and package a Keras ResNet for TFLite, ONNX and OpenVINO."""
