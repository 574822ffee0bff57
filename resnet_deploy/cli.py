"""The CLI: parse, call the public API, turn typed errors into one line and an exit code."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from resnet_deploy.config import ExportConfig, Precision, QuantConfig
from resnet_deploy.errors import DeployError

DEFAULT_OUT = Path("artifacts")


def _fail(message: str, code: int) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="resnet-deploy")
def cli() -> None:
    """Convert, int8-quantise and package a Keras ResNet for TFLite, ONNX and OpenVINO."""


def model_options(f):
    f = click.option("--width", type=int, default=None, help="ResNet base width (resnet18/34/50; default 64).")(f)
    f = click.option("--classes", type=int, default=None, help="Class count (resnet18/34/50; default 1000).")(f)
    f = click.option("--input-size", type=int, default=None, help="Square input size (resnet18/34/50; default 224).")(f)
    f = click.option("--model", "model_name", default="digits", show_default=True,
                     help="Built-in model (see `list`) or a path to .keras/.h5/SavedModel dir.")(f)
    return f


@cli.command()
@click.option("--target", "--targets", "target", default="tflite", show_default=True,
              help="tflite, onnx, openvino, a comma list, or all.")
@model_options
@click.option("--precision", default="int8", show_default=True, help="int8, fp16, dynamic or fp32.")
@click.option("--calib", default="digits", show_default=True,
              help="Calibration data: digits, synthetic, an image folder, or a .npy/.npz file.")
@click.option("--calib-size", type=int, default=200, show_default=True, help="Calibration samples to use.")
@click.option("--io-dtype", default="int8", show_default=True, help="TFLite int8 model I/O: int8 or float.")
@click.option("--calib-method", default="minmax", show_default=True,
              help="ONNX int8 activation ranges: minmax, entropy or percentile.")
@click.option("--onnx-format", default="auto", show_default=True,
              help="ONNX int8 format: auto (fastest for this CPU), qdq-u8s8, qdq-s8s8, qoperator-u8s8.")
@click.option("--opset", type=int, default=17, show_default=True, help="ONNX opset.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of synthetic calibration data.")
@click.option("--out", type=click.Path(path_type=Path), default=DEFAULT_OUT, show_default=True,
              help="Output root: OUT/<model>/<target>/<precision>/.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def export(target, model_name, input_size, classes, width, precision, calib, calib_size, io_dtype, calib_method,
           onnx_format, opset, seed, out, as_json) -> None:
    """Export a model to one or more targets, with a manifest per artifact."""
    from calibration.dataset import check_calib_value, from_spec
    from resnet_deploy import pipeline
    from resnet_deploy.models import load_model
    from resnet_deploy.progress import ConsoleProgress
    from resnet_deploy.target import get_target, parse_targets

    config = ExportConfig(precision=precision, calib_size=calib_size, opset=opset,
                          quant=QuantConfig(io_dtype=io_dtype, method=calib_method, onnx_format=onnx_format))
    targets = parse_targets(target)
    for t in targets:  # reject unsupported combinations before loading anything heavy
        get_target(t).check_config(config)
    if config.precision.needs_calibration:
        check_calib_value(calib)  # a missing folder fails now, not after the model loads
    progress = ConsoleProgress()
    with progress.step(f"loading model {model_name}"):
        name, model = load_model(model_name, input_size, classes, width)
    calib_set = None
    if config.precision.needs_calibration:
        calib_set = from_spec(calib, model.input_shape, size=calib_size, seed=seed)
    result = pipeline.export(name, model, targets, config, calib_set, out, progress)
    rows = []
    for a in result.artifacts:
        f = a.manifest["files"][a.files[0]]
        rows.append({"target": a.target, "precision": a.precision.value, "path": str(a.model_file),
                     "bytes": f["bytes"], "sha256": f["sha256"], "seconds": a.manifest["export"]["seconds"]})
        if not as_json:
            click.echo(f"{a.target:9s} {a.precision.value:8s} {a.model_file}  {f['bytes'] / 1024:.0f} KiB  "
                       f"{a.manifest['export']['seconds']:.1f} s  sha256 {f['sha256'][:12]}")
    if as_json:
        click.echo(json.dumps({"artifacts": rows, "failures": {k: str(v) for k, v in result.failures.items()}}, indent=2))
    for t, err in result.failures.items():
        click.echo(f"error: {t}: {err}", err=True)
    if result.failures:
        sys.exit(max(e.exit_code for e in result.failures.values()))


@cli.command()
@click.option("--model", "model_name", default=None, help="Built-in model or path (default: digits, or the reference's).")
@click.option("--input-size", type=int, default=None, help="Square input size (resnet18/34/50).")
@click.option("--classes", type=int, default=None, help="Class count (resnet18/34/50).")
@click.option("--width", type=int, default=None, help="Base width (resnet18/34/50).")
@click.option("--targets", "--target", "targets", default="all", show_default=True, help="tflite,onnx,openvino or all.")
@click.option("--precision", default="int8", show_default=True, help="One precision or a comma list, e.g. fp32,int8.")
@click.option("--data", default="digits", show_default=True,
              help="Parity inputs: digits (the held-out test split), an image folder (class subfolders = labels), or .npz.")
@click.option("--n", "n", type=int, default=450, show_default=True, help="Number of parity samples.")
@click.option("--threads", type=int, default=2, show_default=True, help="Threads for every runtime.")
@click.option("--calib", default="digits", show_default=True, help="Calibration data for on-the-fly int8 exports.")
@click.option("--calib-size", type=int, default=200, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=DEFAULT_OUT, show_default=True,
              help="Where artifacts are found (or exported to).")
@click.option("--tol", "tol", multiple=True, metavar="PREC.FIELD=VALUE",
              help="Override a tolerance, e.g. --tol int8.cosine_min=0.97 (repeatable).")
@click.option("--save-reference", type=click.Path(path_type=Path), default=None,
              help="Store inputs, labels and Keras outputs in this .npz.")
@click.option("--reference", type=click.Path(path_type=Path), default=None,
              help="Use a saved reference instead of Keras (no TensorFlow needed).")
@click.option("--report-json", type=click.Path(path_type=Path), default=None,
              help="Write the JSON report here (default OUT/<model>/parity.json).")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON report on stdout instead of Markdown.")
def parity(model_name, input_size, classes, width, targets, precision, data, n, threads, calib, calib_size, out, tol, save_reference, reference,
           report_json, as_json) -> None:
    """Run Keras and every artifact on the same inputs; fail on any tolerance breach."""
    from resnet_deploy import pipeline
    from resnet_deploy.artifact import write_json_atomic
    from resnet_deploy.errors import InputError, ParityError
    from resnet_deploy.progress import ConsoleProgress
    from resnet_deploy.report import parity_markdown
    from resnet_deploy.target import parse_targets
    from resnet_deploy.tolerances import parse_overrides

    if n < 1:
        raise InputError(f"--n {n}: pass at least 1 sample.")
    overrides = parse_overrides(list(tol))
    report = pipeline.run_parity(model_name, parse_targets(targets), precision.split(","), data, n, out, threads,
                                 calib, calib_size, reference, save_reference, overrides, ConsoleProgress(),
                                 {"input_size": input_size, "classes": classes, "width": width})
    path = report_json or Path(out) / report.model / "parity.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, report.to_dict())
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else parity_markdown(report))
    click.echo(f"report: {path}", err=True)
    if not report.ok:
        lines = report.breach_lines()
        for line in lines[:-1]:
            click.echo(f"error: parity breach: {line}", err=True)
        raise ParityError(f"parity breach: {lines[-1]}")


@cli.command()
@model_options
@click.option("--targets", "--target", "targets", default="all", show_default=True, help="tflite,onnx,openvino or all.")
@click.option("--precision", default="fp32,int8", show_default=True, help="One precision or a comma list.")
@click.option("--threads", default="2", show_default=True, help="Thread counts, e.g. 1,2.")
@click.option("--batch", type=int, default=1, show_default=True)
@click.option("--keras/--no-keras", default=True, show_default=True, help="Time the Keras model as the baseline.")
@click.option("--calib", default=None, help="Calibration data for on-the-fly int8 exports (default: digits for the "
              "digits model, else synthetic).")
@click.option("--calib-size", type=int, default=64, show_default=True)
@click.option("--warmup-s", type=float, default=1.0, show_default=True, help="Minimum warm-up seconds (and >= 10 runs).")
@click.option("--seconds", type=float, default=2.0, show_default=True, help="Minimum measured seconds (and >= 50 runs).")
@click.option("--out", type=click.Path(path_type=Path), default=DEFAULT_OUT, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON on stdout.")
def bench(model_name, input_size, classes, width, targets, precision, threads, batch, keras, calib, calib_size,
          warmup_s, seconds, out, as_json) -> None:
    """Time Keras and every artifact with one latency protocol; writes OUT/<model>/bench.json."""
    from resnet_deploy import pipeline
    from resnet_deploy.errors import InputError
    from resnet_deploy.latency import Protocol
    from resnet_deploy.progress import ConsoleProgress
    from resnet_deploy.report import latency_markdown
    from resnet_deploy.target import parse_targets

    try:
        thread_list = [int(t) for t in threads.split(",")]
    except ValueError:
        raise InputError(f"--threads {threads!r} is not a comma list of integers, e.g. 1,2.") from None
    protocol = Protocol(warmup_s=warmup_s, seconds=seconds)
    result = pipeline.run_bench(model_name, parse_targets(targets), precision.split(","), thread_list, batch, out,
                                keras, protocol, calib or ("digits" if model_name == "digits" else "synthetic"),
                                calib_size, {"input_size": input_size, "classes": classes, "width": width},
                                ConsoleProgress())
    click.echo(json.dumps(result, indent=2) if as_json else latency_markdown(result))


@cli.command()
@click.option("--model", "model_name", default="digits", show_default=True, help="Model name under --out.")
@click.option("--out", type=click.Path(path_type=Path), default=DEFAULT_OUT, show_default=True)
@click.option("--dest", type=click.Path(path_type=Path), default=None, help="Report folder (default OUT/<model>/report).")
@click.option("--json", "as_json", is_flag=True, help="Print the written paths as JSON.")
def report(model_name, out, dest, as_json) -> None:
    """Write an offline HTML page and a Markdown file from the last parity and bench runs."""
    from resnet_deploy.errors import InputError
    from resnet_deploy.report import write_report

    name = Path(model_name).stem if model_name.endswith((".keras", ".h5")) else model_name
    base = Path(out) / name
    found = {}
    for kind in ("parity", "bench"):
        f = base / f"{kind}.json"
        if f.is_file():
            try:
                found[kind] = json.loads(f.read_text())
            except json.JSONDecodeError as e:
                raise InputError(f"{str(f)!r} is not valid JSON ({e}); re-run `{kind}`.") from e
    if not found:
        raise InputError(f"No parity.json or bench.json under {str(base)!r}; run `parity --model {name}` and/or "
                         f"`bench --model {name}` first.")
    paths = write_report(found.get("parity"), found.get("bench"), dest or base / "report")
    click.echo(json.dumps(paths, indent=2) if as_json else f"report: {paths['html']}\nmarkdown: {paths['markdown']}")


@cli.command()
@model_options
@click.option("--targets", "--target", "targets", default="all", show_default=True, help="tflite,onnx,openvino or all.")
@click.option("--precision", default="int8", show_default=True)
@click.option("--data", default="digits", show_default=True, help="Reference inputs (digits: held-out split).")
@click.option("--n", "n", type=int, default=200, show_default=True, help="Reference samples shipped in the bundle.")
@click.option("--threads", type=int, default=2, show_default=True)
@click.option("--calib", default="digits", show_default=True, help="Calibration data for on-the-fly int8 exports.")
@click.option("--out", type=click.Path(path_type=Path), default=DEFAULT_OUT, show_default=True,
              help="Bundles go to OUT/bundles/<model>-<target>-<precision>[.tar.gz].")
@click.option("--json", "as_json", is_flag=True)
def package(model_name, input_size, classes, width, targets, precision, data, n, threads, calib, out, as_json) -> None:
    """Write self-testing bundles (directory + .tar.gz) per target."""
    from resnet_deploy import bundle
    from resnet_deploy.progress import ConsoleProgress
    from resnet_deploy.target import parse_targets

    made = bundle.package(model_name, parse_targets(targets), precision, data, n, out, threads, calib,
                          model_options={"input_size": input_size, "classes": classes, "width": width},
                          progress=ConsoleProgress())
    if as_json:
        click.echo(json.dumps(made, indent=2))
        return
    for b in made:
        acc = b["host"]["parity"].get("accuracy")
        click.echo(f"{b['tarball']}  {b['bytes'] / 1024:.0f} KiB  host p50 {b['host']['latency']['p50']:.2f} ms"
                   + (f"  accuracy {acc * 100:.2f}%" if acc is not None else ""))


@cli.command()
@click.argument("bundle_path", metavar="BUNDLE", type=click.Path(path_type=Path))
@click.option("--to", "to", required=True, help="A folder, or ssh://user@host:port/path.")
@click.option("--python", "python", default=None, help="The device's Python (default: python3 over SSH, this one locally).")
@click.option("--threads", type=int, default=None, help="Runtime threads on the device (default: the host's).")
@click.option("--identity", "-i", type=click.Path(path_type=Path), default=None, help="SSH private key.")
@click.option("--ssh-option", "-o", "ssh_options", multiple=True, help="Extra ssh -o options, e.g. UserKnownHostsFile=FILE.")
@click.option("--connect-timeout", type=int, default=10, show_default=True, help="Seconds to wait for the device.")
@click.option("--warmup-s", type=float, default=None, help="Self-test warm-up seconds (default 1).")
@click.option("--seconds", type=float, default=None, help="Self-test timed seconds (default 2).")
@click.option("--json", "as_json", is_flag=True, help="Print the device's JSON result only.")
def deploy(bundle_path, to, python, threads, identity, ssh_options, connect_timeout, warmup_s, seconds, as_json) -> None:
    """Copy a bundle to a device, run its self-test there, and show the result next to the host's."""
    from resnet_deploy import bundle
    from resnet_deploy.errors import ParityError

    protocol = {k: v for k, v in (("warmup_s", warmup_s), ("seconds", seconds)) if v is not None}
    result = bundle.deploy(bundle_path, to, python, threads, protocol, identity, list(ssh_options), connect_timeout)
    click.echo(json.dumps(result, indent=2) if as_json else bundle.comparison_markdown(result))
    if not result.get("ok"):
        code = result.get("exit_code") or ParityError.exit_code
        click.echo(f"error: self-test failed on the device: {result.get('error') or 'tolerance breached'}", err=True)
        sys.exit(code)


@cli.command("list")
def list_cmd() -> None:
    """Show targets, models and precisions."""
    from resnet_deploy.models import BUILTIN_MODELS
    from resnet_deploy.target import available_targets, get_target

    click.echo("targets:")
    for name in available_targets():
        try:
            t = get_target(name)
            click.echo(f"  {name:9s} precisions: {', '.join(p.value for p in t.precisions):28s} {t.description}")
        except (ImportError, DeployError) as e:
            click.echo(f"  {name:9s} unavailable: {e}")
    click.echo("models:")
    for spec in BUILTIN_MODELS.values():
        click.echo(f"  {spec.name:9s} {spec.description}")
    click.echo("precisions: " + ", ".join(p.value for p in Precision))


def main(argv: list[str] | None = None) -> None:
    """Entry point: one line and a non-zero exit for every user error, no traceback."""
    try:
        cli.main(args=argv, prog_name="resnet-deploy", standalone_mode=False)
    except DeployError as e:
        _fail(str(e), e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:
        _fail(e.format_message().replace("\n", " "), e.exit_code)
    except click.Abort:
        _fail("aborted", 130)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
