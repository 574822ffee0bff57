"""Commands that check and measure artifacts: parity, bench, gate, report, matrix."""

from __future__ import annotations

from pathlib import Path

import click

from resnet_deploy.errors import ParityError
from resnet_deploy.evaluate.matrix import MatrixRequest
from resnet_deploy.requests import DEFAULT_OUT, BenchRequest, GateRequest, ParityRequest, ReportRequest

from resnet_deploy.cli.options import (
    targets_option,
    default,
    _artifact_options,
    _given,
    _int_list,
    _model,
    _progress,
    artifact_options,
    model_options,
    protocol_options,
    precisions_option,
    tol_option,
)
from resnet_deploy.cli.group import EXAMPLE, as_json_text, cli


@cli.command(
    epilog=EXAMPLE.format(
        "python cli.py parity --model my_model.keras --data ./val_images --targets all --precision fp32,int8"
    )
)
@model_options
@targets_option(ParityRequest)
@precisions_option(ParityRequest)
@click.option(
    "--data",
    default=None,
    help="Parity inputs: an image folder (class subfolders = labels), a .npz, digits "
    "(the held-out test split; the default for digits) or synthetic (untrained built-ins).",
)
@click.option(
    "--n",
    "n",
    type=int,
    default=default(ParityRequest, "n"),
    help="Parity samples, a seeded stratified subset of --data (default: all of it; synthetic: 200).",
)
@click.option(
    "--threads",
    type=int,
    default=default(ParityRequest, "threads"),
    show_default=True,
    help="Threads for every runtime.",
)
@artifact_options
@tol_option
@click.option(
    "--save-reference",
    type=click.Path(path_type=Path),
    default=None,
    help="Store inputs, labels and Keras outputs in this .npz.",
)
@click.option(
    "--reference",
    type=click.Path(path_type=Path),
    default=None,
    help="Use a saved reference instead of Keras (no TensorFlow needed).",
)
@click.option(
    "--report-json",
    type=click.Path(path_type=Path),
    default=None,
    help="Write the JSON report here (default OUT/<model>/parity.json).",
)
@click.option("--allow-low-accuracy", is_flag=True, help="Compare even if Keras itself scores near chance (untrained).")
@click.option(
    "--cluster",
    default=None,
    metavar="ADDRESS",
    help="Shard the samples over a Ray cluster: its address (ray://... or host:port), auto, or local "
    "(a cluster in this process). Needs the 'cluster' extra.",
)
@click.option("--shards", type=int, default=None, help="Shards with --cluster (default: one per CPU of the cluster).")
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
    req = ParityRequest(
        model,
        kw["targets"],
        kw["precision"],
        kw["data"],
        kw["n"],
        kw["threads"],
        _artifact_options(kw),
        kw["out"],
        parse_overrides(list(tol)),
        reference,
        kw["save_reference"],
        kw["report_json"],
        kw["allow_low_accuracy"],
        kw["cluster"],
        kw["shards"],
    )
    report = run_parity(req, _progress(as_json))
    click.echo(as_json_text(report.to_dict()) if as_json else parity_markdown(report))
    click.echo(f"report: {report_path(req, report)}", err=True)
    if not report.ok:
        lines = report.breach_lines()
        for line in lines[:-1]:
            click.echo(f"error: parity breach: {line}", err=True)
        raise ParityError(f"parity breach: {lines[-1]}")


@cli.command(epilog=EXAMPLE.format("python cli.py bench --targets all --precision fp32,int8 --threads 1,2"))
@model_options
@targets_option(BenchRequest)
@precisions_option(BenchRequest)
@click.option(
    "--threads",
    default=default(BenchRequest, "threads"),
    show_default=True,
    help="Thread counts, e.g. 1,2.",
)
@click.option(
    "--batch",
    default=default(BenchRequest, "batch"),
    show_default=True,
    help="Batch size; throughput mode takes a list, e.g. 1,8,32.",
)
@click.option(
    "--mode",
    type=click.Choice(["latency", "throughput"]),
    default=default(BenchRequest, "mode"),
    show_default=True,
    help="latency: one request at a time (bench.json); throughput: requests in flight on every core (throughput.json).",
)
@click.option(
    "--keras/--no-keras",
    default=default(BenchRequest, "keras"),
    show_default=True,
    help="Time the Keras model as the baseline.",
)
@click.option(
    "--profile",
    is_flag=True,
    help="Also per-op timings of every artifact, mapped to Keras layers (profile.json; OpenVINO and ONNX Runtime).",
)
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
    req = BenchRequest(
        _model(kw),
        kw.pop("targets"),
        kw.pop("precision"),
        _int_list(threads, "--threads"),
        _int_list(batch, "--batch"),
        kw.pop("keras"),
        protocol,
        _artifact_options(kw),
        kw.pop("out"),
        mode,
        kw.pop("profile"),
    )
    result = run_bench(req, _progress(as_json))
    table = throughput_markdown if mode == "throughput" else latency_markdown
    click.echo(
        as_json_text(result)
        if as_json
        else table(result.to_dict()) + (profile_markdown(result.profile, top=True) if result.profile else "")
    )


@cli.command(epilog=EXAMPLE.format("python cli.py gate --baseline ci/gate-baseline.json"))
@click.option("--baseline", type=click.Path(path_type=Path), required=True, help="The last good run's gate record.")
@click.option(
    "--current",
    type=click.Path(path_type=Path),
    default=None,
    help="This run's gate record (default: run parity and bench now).",
)
@click.option(
    "--update-baseline", is_flag=True, help="Write this run as the baseline if it passes (or if there is none)."
)
@click.option("--max-acc-drop", type=float, default=None, help="Accuracy points (default 0.5).")
@click.option("--max-agreement-drop", type=float, default=None, help="Top-1 agreement points (default 1.0).")
@click.option("--max-sqnr-drop", type=float, default=None, help="SQNR dB (default 1.0).")
@click.option(
    "--max-latency-regression",
    type=float,
    default=None,
    help="Percent slower, as the ratio to Keras in the same run (default 15).",
)
@model_options
@targets_option(GateRequest)
@precisions_option(GateRequest)
@click.option("--data", default=None, help="Parity inputs (as for parity).")
@click.option(
    "--n",
    "n",
    type=int,
    default=default(GateRequest, "n"),
    help="Parity samples when parity runs now (default: all of --data; synthetic: 200).",
)
@click.option(
    "--threads",
    type=int,
    default=default(GateRequest, "threads"),
    show_default=True,
    help="Threads for every runtime (when parity and bench run now).",
)
@protocol_options
@artifact_options
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
def gate(as_json: bool, warmup_s, seconds, **kw) -> None:
    """Fail (exit 5) if this run is worse than the baseline: accuracy, agreement, SQNR, latency ratio."""
    from resnet_deploy.evaluate.gate import RegressionError, run_gate
    from resnet_deploy.measure.latency import Protocol
    from resnet_deploy.requests import GateRequest

    limits = {
        m: kw.pop(k)
        for m, k in (
            ("accuracy", "max_acc_drop"),
            ("top1_agreement", "max_agreement_drop"),
            ("sqnr_db", "max_sqnr_drop"),
            ("latency_ratio", "max_latency_regression"),
        )
    }
    protocol = Protocol(**{k: v for k, v in (("warmup_s", warmup_s), ("seconds", seconds)) if v is not None})
    req = GateRequest(
        kw.pop("baseline"),
        kw.pop("current"),
        kw.pop("update_baseline"),
        {k: v for k, v in limits.items() if v is not None},
        _model(kw),
        kw.pop("targets"),
        kw.pop("precision"),
        kw.pop("data"),
        kw.pop("n"),
        kw.pop("threads"),
        protocol,
        _artifact_options(kw),
        kw.pop("out"),
    )
    try:
        result = run_gate(req, _progress(as_json))
    except RegressionError as e:
        click.echo(e.markdown)  # the table first: CI logs show what regressed, then the one-line error
        raise
    click.echo(as_json_text(result) if as_json else result.markdown)


@cli.command(epilog=EXAMPLE.format("python cli.py report --out artifacts"))
@click.option(
    "--model",
    "model_name",
    default=default(ReportRequest, "model"),
    show_default=True,
    help="Model name or path, as given to parity.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=DEFAULT_OUT,
    show_default=True,
    help="Workspace whose results the report is made from; it is written to OUT/<model>/report/.",
)
@click.option(
    "--dest", type=click.Path(path_type=Path), default=None, help="Report folder (default OUT/<model>/report)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the written paths as JSON.")
def report(model_name, out, dest, as_json) -> None:
    """Write an offline HTML page and a Markdown file from the last parity and bench runs."""
    from resnet_deploy.reporting.html import write_report
    from resnet_deploy.requests import ReportRequest

    made = write_report(ReportRequest(model_name, out, dest))
    click.echo(
        as_json_text(made)
        if as_json
        else "\n".join(f"{r.model}: report {r.html}\n{r.model}: markdown {r.markdown}" for r in made.reports)
    )


@cli.command(
    epilog=EXAMPLE.format("python cli.py matrix --models digits,resnet18 --input-size 64 --precision fp32,int8")
)
@click.option(
    "--models", default="digits", show_default=True, help="Built-in models (see `list`) or model files, a comma list."
)
@click.option("--input-size", type=int, default=None, help="Square input size, for the models that take one.")
@click.option("--classes", type=int, default=None, help="Class count, for the models that take one.")
@click.option("--width", type=int, default=None, help="ResNet base width, for the models that take one.")
@targets_option(MatrixRequest)
@precisions_option(MatrixRequest)
@click.option("--data", default=None, help="Parity inputs for every model (default: each model's own).")
@click.option("--n", "n", type=int, default=None, help="Parity samples (default: all of the data; synthetic: 200).")
@click.option(
    "--threads",
    type=int,
    default=default(MatrixRequest, "threads"),
    show_default=True,
    help="Threads for every runtime.",
)
@protocol_options
@artifact_options
@click.option("--allow-low-accuracy", is_flag=True, help="Go on even if Keras itself scores near chance (untrained).")
@click.option("--json", "as_json", is_flag=True, help="Print every cell as JSON on stdout.")
def matrix(warmup_s, seconds, as_json: bool, **kw) -> None:
    """Models x targets x precisions in one process: export what is missing, parity and latency,
    one table (exit 5 if any cell fails parity or cannot be exported)."""
    from resnet_deploy.evaluate.matrix import run_matrix
    from resnet_deploy.measure.latency import Protocol
    from resnet_deploy.reporting.summary import matrix_section

    protocol = Protocol(**{k: v for k, v in (("warmup_s", warmup_s), ("seconds", seconds)) if v is not None})
    sizes = {k: kw.pop(k) for k in ("input_size", "classes", "width")}
    req = MatrixRequest(
        kw.pop("models"),
        kw.pop("targets"),
        kw.pop("precision"),
        kw.pop("data"),
        kw.pop("n"),
        kw.pop("threads"),
        protocol,
        _artifact_options(kw),
        kw.pop("out"),
        sizes,
        kw.pop("allow_low_accuracy"),
    )
    result = run_matrix(req, _progress(as_json))
    click.echo(as_json_text(result) if as_json else matrix_section(result.to_dict()).markdown())
    if not result.ok:
        bad = [f"{r.model} {r.target}/{r.precision}: {r.verdict}" for r in result.rows if not r.ok]
        raise ParityError(f"{len(bad)} of {len(result.rows)} cells failed; first: {bad[0]}")
