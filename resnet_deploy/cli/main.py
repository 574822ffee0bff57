"""The CLI: parse options, build one request, call the library, format what it returns, and
turn typed errors into one `error:` line and an exit code. No work happens here."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from resnet_deploy.cli.options import (_artifact_options, _budget, _given, _int_list, _model, _progress, artifact_options,
                                       model_options, protocol_options)
from resnet_deploy.errors import DeployError, ParityError
from resnet_deploy.requests import DEFAULT_OUT


EXAMPLE = "\b\nExample:\n  {}"  # the last lines of every command's --help


def as_json_text(data) -> str:
    """`--json` output: indented, NaN as null (JSON has no NaN; a reader must never meet a bare one)."""
    import json

    from resnet_deploy.portable.checks import no_nan

    return json.dumps(no_nan(data), indent=2, default=str)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="resnet-deploy")
def cli() -> None:
    """Convert, int8-quantise and package a Keras ResNet for TFLite, ONNX and OpenVINO."""


@cli.command(epilog=EXAMPLE.format("python cli.py export --model my_model.keras --calib ./calib_images --preprocess imagenet-caffe --target all"))
@click.option("--target", "--targets", "targets", default="tflite", show_default=True,
              help="tflite, onnx, openvino, a comma list, or all.")
@model_options
@click.option("--precision", default="int8", show_default=True, help="int8, fp16, dynamic or fp32.")
@artifact_options
@click.option("--max-acc-drop", type=float, default=None, metavar="PTS",
              help="int8 accuracy budget: keep the most harmful layers in float until int8 is within PTS points "
                   "of Keras on --val (exit 5 if it cannot be).")
@click.option("--val", default=None, help="Labelled validation data for --max-acc-drop (not calibration data): "
              "an image folder, an .npz with y, or digits (its validation split).")
@click.option("--max-float-layers", type=int, default=None,
              help="Most layers --max-acc-drop may keep in float (default 8).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def export(as_json: bool, max_acc_drop, val, max_float_layers, **kw) -> None:
    """Export a model to one or more targets, with a manifest per artifact (replaces an existing one)."""
    from resnet_deploy.api import export as exporting
    from resnet_deploy.requests import ExportRequest

    req = ExportRequest(_model(kw), kw.pop("targets"), kw.pop("precision"), _artifact_options(kw), kw.pop("out"),
                        _budget(max_acc_drop, val, max_float_layers))
    result = exporting(req, _progress())
    if as_json:
        click.echo(as_json_text(result.to_dict()))
    else:
        for r in result.to_dict()["artifacts"]:
            click.echo(f"{r['target']:9s} {r['precision']:8s} {r['path']}  {r['bytes'] / 1024:.0f} KiB  "
                       f"{r['seconds']:.1f} s  sha256 {r['sha256'][:12]}")
    for t, err in result.failures.items():
        click.echo(f"error: {err}" if str(err).startswith(f"{t} ") else f"error: {t}: {err}", err=True)
    if result.failures:
        sys.exit(max(e.exit_code for e in result.failures.values()))


@cli.command(epilog=EXAMPLE.format("python cli.py parity --model my_model.keras --data ./val_images --targets all --precision fp32,int8"))
@model_options
@click.option("--targets", "--target", "targets", default="all", show_default=True, help="tflite,onnx,openvino or all.")
@click.option("--precision", default="int8", show_default=True, help="One precision or a comma list, e.g. fp32,int8.")
@click.option("--data", default=None, help="Parity inputs: an image folder (class subfolders = labels), a .npz, digits "
              "(the held-out test split; the default for digits) or synthetic (untrained built-ins).")
@click.option("--n", "n", type=int, default=450, show_default=True, help="Number of parity samples.")
@click.option("--threads", type=int, default=2, show_default=True, help="Threads for every runtime.")
@artifact_options
@click.option("--tol", "tol", multiple=True, metavar="PREC.FIELD=VALUE",
              help="Override a tolerance, e.g. --tol int8.cosine_min=0.97 (repeatable).")
@click.option("--save-reference", type=click.Path(path_type=Path), default=None,
              help="Store inputs, labels and Keras outputs in this .npz.")
@click.option("--reference", type=click.Path(path_type=Path), default=None,
              help="Use a saved reference instead of Keras (no TensorFlow needed).")
@click.option("--report-json", type=click.Path(path_type=Path), default=None,
              help="Write the JSON report here (default OUT/<model>/parity.json).")
@click.option("--allow-low-accuracy", is_flag=True, help="Compare even if Keras itself scores near chance (untrained).")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON report on stdout instead of Markdown.")
def parity(tol, reference, as_json: bool, **kw) -> None:
    """Run Keras and every artifact on the same inputs; fail (exit 5) on any tolerance breach."""
    from resnet_deploy.evaluate.parity_run import report_path, run_parity
    from resnet_deploy.reporting.markdown import parity_markdown
    from resnet_deploy.requests import ParityRequest
    from resnet_deploy.evaluate.tolerances import parse_overrides

    given = kw.pop("model_name")
    model = _model(kw, given)
    if reference is not None and given == "digits" and not _given("--model"):
        model = None  # a saved reference names its own model
    req = ParityRequest(model, kw["targets"], kw["precision"], kw["data"], kw["n"], kw["threads"],
                        _artifact_options(kw), kw["out"], parse_overrides(list(tol)), reference, kw["save_reference"],
                        kw["report_json"], kw["allow_low_accuracy"])
    report = run_parity(req, _progress())
    click.echo(as_json_text(report.to_dict()) if as_json else parity_markdown(report))
    click.echo(f"report: {report_path(req, report)}", err=True)
    if not report.ok:
        lines = report.breach_lines()
        for line in lines[:-1]:
            click.echo(f"error: parity breach: {line}", err=True)
        raise ParityError(f"parity breach: {lines[-1]}")


@cli.command(epilog=EXAMPLE.format("python cli.py bench --targets all --precision fp32,int8 --threads 1,2"))
@model_options
@click.option("--targets", "--target", "targets", default="all", show_default=True, help="tflite,onnx,openvino or all.")
@click.option("--precision", default="fp32,int8", show_default=True, help="One precision or a comma list.")
@click.option("--threads", default="2", show_default=True, help="Thread counts, e.g. 1,2.")
@click.option("--batch", default="1", show_default=True, help="Batch size; throughput mode takes a list, e.g. 1,8,32.")
@click.option("--mode", type=click.Choice(["latency", "throughput"]), default="latency", show_default=True,
              help="latency: one request at a time (bench.json); throughput: requests in flight on every core "
                   "(throughput.json).")
@click.option("--keras/--no-keras", default=True, show_default=True, help="Time the Keras model as the baseline.")
@click.option("--profile", is_flag=True, help="Also per-op timings of every artifact, mapped to Keras layers "
              "(profile.json; OpenVINO and ONNX Runtime).")
@protocol_options
@artifact_options
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON on stdout.")
def bench(threads: str, batch: str, warmup_s, seconds, as_json: bool, **kw) -> None:
    """Time Keras and every artifact: latency (one protocol for every runtime) or throughput."""
    from resnet_deploy.measure.bench import run_bench
    from resnet_deploy.measure.latency import Protocol
    from resnet_deploy.reporting.markdown import latency_markdown, profile_markdown, throughput_markdown
    from resnet_deploy.requests import BenchRequest

    protocol = Protocol(**{k: v for k, v in (("warmup_s", warmup_s), ("seconds", seconds)) if v is not None})
    mode = kw.pop("mode")
    req = BenchRequest(_model(kw), kw.pop("targets"), kw.pop("precision"), _int_list(threads, "--threads"),
                       _int_list(batch, "--batch"), kw.pop("keras"), protocol, _artifact_options(kw), kw.pop("out"), mode,
                       kw.pop("profile"))
    result = run_bench(req, _progress())
    table = throughput_markdown if mode == "throughput" else latency_markdown
    click.echo(as_json_text(result) if as_json else table(result)
               + (profile_markdown(result["profile"], top=True) if "profile" in result else ""))


@cli.command(epilog=EXAMPLE.format("python cli.py report --out artifacts"))
@click.option("--model", "model_name", default="digits", show_default=True, help="Model name or path, as given to parity.")
@click.option("--out", type=click.Path(path_type=Path), default=DEFAULT_OUT, show_default=True,
              help="Workspace whose results the report is made from; it is written to OUT/<model>/report/.")
@click.option("--dest", type=click.Path(path_type=Path), default=None, help="Report folder (default OUT/<model>/report).")
@click.option("--json", "as_json", is_flag=True, help="Print the written paths as JSON.")
def report(model_name, out, dest, as_json) -> None:
    """Write an offline HTML page and a Markdown file from the last parity and bench runs."""
    from resnet_deploy.reporting.html import write_report
    from resnet_deploy.requests import ReportRequest

    paths = write_report(ReportRequest(model_name, out, dest))
    click.echo(as_json_text(paths) if as_json else f"report: {paths['html']}\nmarkdown: {paths['markdown']}")


@cli.command(epilog=EXAMPLE.format("python cli.py package --model my_model.keras --data ./val_images --targets onnx --sign-key signing.key"))
@model_options
@click.option("--targets", "--target", "targets", default="all", show_default=True, help="tflite,onnx,openvino or all.")
@click.option("--precision", default="int8", show_default=True, help="The precision to package: int8, fp16, dynamic or fp32.")
@click.option("--data", default=None, help="Reference inputs shipped in the bundle: an image folder, a .npz, "
              "digits (held-out split; the default for digits) or synthetic (untrained built-ins).")
@click.option("--n", "n", type=int, default=200, show_default=True, help="Reference samples shipped in the bundle.")
@click.option("--threads", type=int, default=2, show_default=True, help="Threads for the host's parity and latency check.")
@artifact_options
@click.option("--allow-low-accuracy", is_flag=True, help="Package even if Keras itself scores near chance (untrained).")
@click.option("--sign-key", type=click.Path(path_type=Path), default=None,
              help="Sign each bundle with this EC private key (OpenSSF model-signing; see README).")
@click.option("--json", "as_json", is_flag=True, help="Print what was packaged as JSON on stdout.")
def package(as_json: bool, **kw) -> None:
    """Write self-testing bundles (OUT/bundles/<model>-<target>-<precision>[.tar.gz]) per target."""
    from resnet_deploy.ship import bundle
    from resnet_deploy.requests import PackageRequest

    req = PackageRequest(_model(kw), kw.pop("targets"), kw.pop("precision"), kw.pop("data"), kw.pop("n"),
                         kw.pop("threads"), _artifact_options(kw), kw.pop("out"), kw.pop("allow_low_accuracy"),
                         kw.pop("sign_key"))
    made = bundle.package(req, _progress())
    if as_json:
        click.echo(as_json_text(made))
        return
    for b in made:
        acc = b["host"]["parity"].get("accuracy")
        click.echo(f"{b['tarball']}  {b['bytes'] / 1024:.0f} KiB  host p50 {b['host']['latency']['p50']:.2f} ms"
                   + (f"  accuracy {acc * 100:.2f}%" if acc is not None else ""))


@cli.command(epilog=EXAMPLE.format("python cli.py deploy artifacts/bundles/digits-onnx-int8.tar.gz --to ssh://pi@10.0.0.7:22/home/pi/models"))
@click.argument("bundle_path", metavar="BUNDLE", type=click.Path(path_type=Path))
@click.option("--to", "to", required=True, help="A folder, or ssh://user@host:port/path.")
@click.option("--python", "python", default=None, help="The device's Python (default: python3 over SSH, this one locally).")
@click.option("--threads", type=int, default=None, help="Runtime threads on the device (default: the host's).")
@click.option("--identity", "-i", type=click.Path(path_type=Path), default=None, help="SSH private key.")
@click.option("--ssh-option", "-o", "ssh_options", multiple=True, help="Extra ssh -o options, e.g. UserKnownHostsFile=FILE.")
@click.option("--ssh-config", "-F", type=click.Path(path_type=Path), default=None,
              help="An ssh config file (ssh -F): Host aliases, ProxyJump, keys; it reaches jump hosts too.")
@click.option("--connect-timeout", type=int, default=10, show_default=True, help="Seconds to wait for the device.")
@click.option("--allow-profile-mismatch", is_flag=True,
              help="Deploy and self-test even if the device is not what the bundle was built for (--device).")
@click.option("--verify-key", type=click.Path(path_type=Path), default=None,
              help="Refuse (exit 6) a bundle this EC public key's owner did not sign, or that changed since.")
@click.option("--inventory", type=click.Path(path_type=Path), default=None,
              help="An Ansible inventory (INI or YAML): deploy to all its hosts; --to is then the folder on each.")
@click.option("--limit", default=None, help="Only these inventory hosts (an Ansible pattern, e.g. 'boards:!pi3').")
@click.option("--max-parallel", type=int, default=8, show_default=True, help="Hosts worked on at once (--inventory).")
@click.option("--host-timeout", type=float, default=900, show_default=True,
              help="Seconds for one host's self-test (--inventory; per host: resnet_deploy_timeout).")
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
    click.echo(as_json_text(result) if as_json else deploying.comparison_markdown(result))
    if not result.get("ok"):
        code = result.get("exit_code") or ParityError.exit_code
        click.echo(f"error: self-test failed on the device: {result.get('error') or 'tolerance breached'}", err=True)
        sys.exit(code)


def _deploy_fleet(req, as_json: bool) -> None:
    from resnet_deploy.ship.fleet import deploy_fleet
    from resnet_deploy.ship.fleet_result import fleet_markdown

    result = deploy_fleet(req, _progress())
    click.echo(as_json_text(result) if as_json else fleet_markdown(result))
    if not result["ok"]:
        click.echo(f"error: {result['failed']} of {len(result['hosts'])} hosts failed; their rows say why.", err=True)
        sys.exit(DeployError.exit_code)


@cli.command(epilog=EXAMPLE.format("python cli.py diagnose --model my_model.keras --data ./val_images --targets all --n 16"))
@model_options
@click.option("--targets", "--target", "targets", default="all", show_default=True, help="tflite,onnx,openvino or all.")
@click.option("--data", default=None, help="Inputs: an image folder, a .npz, digits (held-out split; the default for "
              "digits) or synthetic (untrained built-ins).")
@click.option("--n", "n", type=int, default=16, show_default=True, help="Samples to compare on.")
@click.option("--sqnr-limit", type=float, default=20.0, show_default=True, help="dB below which a layer has diverged.")
@artifact_options
@click.option("--json", "as_json", is_flag=True, help="Print the JSON result on stdout.")
def diagnose(as_json: bool, **kw) -> None:
    """Per Keras layer, on every backend: how far int8 is from fp32, and which layers add the most error."""
    from resnet_deploy.quantize.diagnose_run import run_diagnose
    from resnet_deploy.reporting.markdown import diagnose_markdown
    from resnet_deploy.requests import DiagnoseRequest

    req = DiagnoseRequest(_model(kw), kw.pop("targets"), kw.pop("data"), kw.pop("n"), kw.pop("sqnr_limit"),
                          _artifact_options(kw), kw.pop("out"))
    result = run_diagnose(req, _progress())
    click.echo(as_json_text(result) if as_json else diagnose_markdown(result))


@cli.command(epilog=EXAMPLE.format("python cli.py gate --baseline ci/gate-baseline.json"))
@click.option("--baseline", type=click.Path(path_type=Path), required=True, help="The last good run's gate record.")
@click.option("--current", type=click.Path(path_type=Path), default=None,
              help="This run's gate record (default: run parity and bench now).")
@click.option("--update-baseline", is_flag=True, help="Write this run as the baseline if it passes (or if there is none).")
@click.option("--max-acc-drop", type=float, default=None, help="Accuracy points (default 0.5).")
@click.option("--max-agreement-drop", type=float, default=None, help="Top-1 agreement points (default 1.0).")
@click.option("--max-sqnr-drop", type=float, default=None, help="SQNR dB (default 1.0).")
@click.option("--max-latency-regression", type=float, default=None,
              help="Percent slower, as the ratio to Keras in the same run (default 15).")
@model_options
@click.option("--targets", "--target", "targets", default="all", show_default=True, help="tflite,onnx,openvino or all.")
@click.option("--precision", default="int8", show_default=True, help="One precision or a comma list, e.g. fp32,int8.")
@click.option("--data", default=None, help="Parity inputs (as for parity).")
@click.option("--n", "n", type=int, default=450, show_default=True, help="Parity samples (when parity runs now).")
@click.option("--threads", type=int, default=2, show_default=True, help="Threads for every runtime (when parity and bench run now).")
@protocol_options
@artifact_options
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
def gate(as_json: bool, warmup_s, seconds, **kw) -> None:
    """Fail (exit 5) if this run is worse than the baseline: accuracy, agreement, SQNR, latency ratio."""
    from resnet_deploy.evaluate.gate import RegressionError, run_gate
    from resnet_deploy.measure.latency import Protocol
    from resnet_deploy.requests import GateRequest

    limits = {m: kw.pop(k) for m, k in (("accuracy", "max_acc_drop"), ("top1_agreement", "max_agreement_drop"),
                                          ("sqnr_db", "max_sqnr_drop"), ("latency_ratio", "max_latency_regression"))}
    protocol = Protocol(**{k: v for k, v in (("warmup_s", warmup_s), ("seconds", seconds)) if v is not None})
    req = GateRequest(kw.pop("baseline"), kw.pop("current"), kw.pop("update_baseline"),
                      {k: v for k, v in limits.items() if v is not None}, _model(kw), kw.pop("targets"),
                      kw.pop("precision"), kw.pop("data"), kw.pop("n"), kw.pop("threads"), protocol,
                      _artifact_options(kw), kw.pop("out"))
    try:
        result = run_gate(req, _progress())
    except RegressionError as e:
        click.echo(e.markdown)  # the table first: CI logs show what regressed, then the one-line error
        raise
    click.echo(as_json_text(result) if as_json else result["markdown"])


@cli.command(epilog=EXAMPLE.format("python cli.py verify artifacts/bundles/digits-onnx-int8.tar.gz --key signing.pub"))
@click.argument("bundle_path", metavar="BUNDLE", type=click.Path(path_type=Path))
@click.option("--key", type=click.Path(path_type=Path), required=True, help="The signer's EC public key (PEM).")
def verify(bundle_path, key) -> None:
    """Check a bundle (folder or .tar.gz): its manifests, every file, and its signature (exit 6 if not)."""
    from resnet_deploy.ship.unpack import verify_signed

    click.echo(verify_signed(bundle_path, key))


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
