"""Commands that ship artifacts: package, deploy (a folder, SSH, a fleet), verify."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from resnet_deploy.errors import DeployError, ParityError

from resnet_deploy.requests import DeployRequest, PackageRequest
from resnet_deploy.cli.options import (
    targets_option,
    default,
    _artifact_options,
    _model,
    _progress,
    artifact_options,
    model_options,
    protocol_options,
    tol_option,
)
from resnet_deploy.cli.group import EXAMPLE, as_json_text, cli


@cli.command(
    epilog=EXAMPLE.format(
        "python cli.py package --model my_model.keras --data ./val_images --targets onnx --sign-key signing.key"
    )
)
@model_options
@targets_option(PackageRequest)
@click.option(
    "--precision",
    default=default(PackageRequest, "precision"),
    show_default=True,
    help="The precision to package: int8, fp16, dynamic or fp32.",
)
@click.option(
    "--data",
    default=None,
    help="Reference inputs shipped in the bundle: an image folder, a .npz, "
    "digits (held-out split; the default for digits) or synthetic (untrained built-ins).",
)
@click.option(
    "--n",
    "n",
    type=int,
    default=default(PackageRequest, "n"),
    show_default=True,
    help="Reference samples shipped in the bundle.",
)
@click.option(
    "--threads",
    type=int,
    default=default(PackageRequest, "threads"),
    show_default=True,
    help="Threads for the host's parity and latency check.",
)
@artifact_options
@click.option("--allow-low-accuracy", is_flag=True, help="Package even if Keras itself scores near chance (untrained).")
@click.option(
    "--sign-key",
    type=click.Path(path_type=Path),
    default=None,
    help="Sign each bundle with this EC private key (OpenSSF model-signing; see README).",
)
@tol_option
@click.option("--json", "as_json", is_flag=True, help="Print every target's outcome as JSON on stdout.")
def package(tol, as_json: bool, **kw) -> None:
    """Write self-testing bundles (OUT/bundles/<model>-<target>-<precision>[.tar.gz]) per target; a
    target whose artifact breaks a tolerance on this host is refused (exit 5), the others packaged."""
    from resnet_deploy.evaluate.tolerances import parse_overrides
    from resnet_deploy.ship import bundle
    from resnet_deploy.requests import PackageRequest

    req = PackageRequest(
        _model(kw),
        kw.pop("targets"),
        kw.pop("precision"),
        kw.pop("data"),
        kw.pop("n"),
        kw.pop("threads"),
        _artifact_options(kw),
        kw.pop("out"),
        kw.pop("allow_low_accuracy"),
        kw.pop("sign_key"),
        parse_overrides(list(tol)),
    )
    made = bundle.package(req, _progress(as_json))
    click.echo(as_json_text(made) if as_json else bundle.outcome_lines(made))
    if not made.ok:
        for r in made.refused[:-1]:
            click.echo(f"error: {r.why}", err=True)
        raise ParityError(made.refused[-1].why)


@cli.command(
    epilog=EXAMPLE.format(
        "python cli.py deploy artifacts/bundles/digits-onnx-int8.tar.gz --to ssh://pi@10.0.0.7:22/home/pi/models"
    )
)
@click.argument("bundle_path", metavar="BUNDLE", type=click.Path(path_type=Path))
@click.option("--to", "to", required=True, help="A folder, or ssh://user@host:port/path.")
@click.option(
    "--python", "python", default=None, help="The device's Python (default: python3 over SSH, this one locally)."
)
@click.option("--threads", type=int, default=None, help="Runtime threads on the device (default: the host's).")
@click.option("--identity", "-i", type=click.Path(path_type=Path), default=None, help="SSH private key.")
@click.option(
    "--ssh-option", "-o", "ssh_options", multiple=True, help="Extra ssh -o options, e.g. UserKnownHostsFile=FILE."
)
@click.option(
    "--ssh-config",
    "-F",
    type=click.Path(path_type=Path),
    default=None,
    help="An ssh config file (ssh -F): Host aliases, ProxyJump, keys; it reaches jump hosts too.",
)
@click.option(
    "--connect-timeout",
    type=int,
    default=default(DeployRequest, "connect_timeout"),
    show_default=True,
    help="Seconds to wait for the device.",
)
@click.option(
    "--allow-profile-mismatch",
    is_flag=True,
    help="Deploy and self-test even if the device is not what the bundle was built for (--device).",
)
@click.option(
    "--verify-key",
    type=click.Path(path_type=Path),
    default=None,
    help="Refuse (exit 6) a bundle this EC public key's owner did not sign, or that changed since.",
)
@click.option(
    "--inventory",
    type=click.Path(path_type=Path),
    default=None,
    help="An Ansible inventory (INI or YAML): deploy to all its hosts; --to is then the folder on each.",
)
@click.option("--limit", default=None, help="Only these inventory hosts (an Ansible pattern, e.g. 'boards:!pi3').")
@click.option(
    "--max-parallel",
    type=int,
    default=default(DeployRequest, "max_parallel"),
    show_default=True,
    help="Hosts worked on at once (--inventory).",
)
@click.option(
    "--host-timeout",
    type=float,
    default=default(DeployRequest, "host_timeout"),
    show_default=True,
    help="Seconds for one host's self-test (--inventory; per host: resnet_deploy_timeout).",
)
@protocol_options
@click.option("--json", "as_json", is_flag=True, help="Print the device's JSON result only.")
def deploy(bundle_path, as_json: bool, **kw) -> None:
    """Copy a bundle to a device (or every host of an Ansible inventory), run its self-test there,
    and show the result next to the host's."""
    from resnet_deploy.ship import deploy as deploying
    from resnet_deploy.requests import DeployRequest

    req = DeployRequest(bundle_path, **kw)
    if req.inventory is not None:
        _deploy_fleet(req, as_json)
        return
    result = deploying.deploy(req)
    click.echo(as_json_text(result) if as_json else deploying.comparison_markdown(result.to_dict()))
    if not result.ok:
        code = result.selftest.get("exit_code") or ParityError.exit_code
        why = result.selftest.get("error") or "tolerance breached"
        click.echo(f"error: self-test failed on the device: {why}", err=True)
        sys.exit(code)


def _deploy_fleet(req, as_json: bool) -> None:
    from resnet_deploy.ship.fleet import deploy_fleet
    from resnet_deploy.ship.fleet_result import fleet_markdown

    result = deploy_fleet(req, _progress(as_json))
    click.echo(as_json_text(result) if as_json else fleet_markdown(result.to_dict()))
    if not result.ok:
        click.echo(f"error: {result.failed} of {len(result.hosts)} hosts failed; their rows say why.", err=True)
        sys.exit(DeployError.exit_code)


@cli.command(epilog=EXAMPLE.format("python cli.py verify artifacts/bundles/digits-onnx-int8.tar.gz --key signing.pub"))
@click.argument("bundle_path", metavar="BUNDLE", type=click.Path(path_type=Path))
@click.option(
    "--key",
    type=click.Path(path_type=Path),
    default=None,
    help="The signer's EC public key (PEM); without it only the checksums are checked, and it says so.",
)
def verify(bundle_path, key) -> None:
    """Check a bundle (folder or .tar.gz): its manifests, every file, and with --key its signature
    (exit 6 if any fails)."""
    from resnet_deploy.ship.unpack import verify_signed

    click.echo(verify_signed(bundle_path, key))
