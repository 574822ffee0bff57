"""Commands that make artifacts and find where int8 loses: export, diagnose."""

from __future__ import annotations

import sys

import click


from resnet_deploy.cli.options import (
    targets_option,
    _artifact_options,
    _budget,
    _model,
    _progress,
    artifact_options,
    default,
    model_options,
)
from resnet_deploy.requests import DiagnoseRequest, ExportRequest
from resnet_deploy.cli.group import EXAMPLE, as_json_text, cli


@cli.command(
    epilog=EXAMPLE.format(
        "python cli.py export --model my_model.keras --calib ./calib_images --preprocess imagenet-caffe --target all"
    )
)
@click.option(
    "--target",
    "--targets",
    "targets",
    default=default(ExportRequest, "targets"),
    show_default=True,
    help="tflite, onnx, openvino, a comma list, or all.",
)
@model_options
@click.option(
    "--precision",
    default=default(ExportRequest, "precision"),
    show_default=True,
    help="int8, fp16, dynamic, fp32 (bf16 on OpenVINO), or a comma list such as fp32,int8.",
)
@artifact_options
@click.option(
    "--max-acc-drop",
    type=float,
    default=None,
    metavar="PTS",
    help="int8 accuracy budget: keep the most harmful layers in float until int8 is within PTS points "
    "of Keras on --val (exit 5 if it cannot be).",
)
@click.option(
    "--val",
    default=None,
    help="Labelled validation data for --max-acc-drop (not calibration data): "
    "an image folder, an .npz with y, or digits (its validation split).",
)
@click.option(
    "--max-float-layers", type=int, default=None, help="Most layers --max-acc-drop may keep in float (default 8)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def export(as_json: bool, max_acc_drop, val, max_float_layers, **kw) -> None:
    """Export a model to one or more targets, with a manifest per artifact (replaces an existing one)."""
    from resnet_deploy.api import export as exporting
    from resnet_deploy.requests import ExportRequest

    req = ExportRequest(
        _model(kw),
        kw.pop("targets"),
        kw.pop("precision"),
        _artifact_options(kw),
        kw.pop("out"),
        _budget(max_acc_drop, val, max_float_layers),
    )
    result = exporting(req, _progress(as_json))
    if as_json:
        click.echo(as_json_text(result.to_dict()))
    elif result.artifacts:
        from resnet_deploy.quantize.budget import met_line

        click.echo(_export_table(result.to_dict()["artifacts"]))
        for a in result.artifacts:
            if a.manifest.get("accuracy_budget"):
                click.echo(met_line(f"{a.target}/{a.precision.value}", a.manifest["accuracy_budget"]))
    for t, err in result.failures.items():
        click.echo(f"error: {err}" if str(err).startswith(f"{t} ") else f"error: {t}: {err}", err=True)
    if result.failures:
        sys.exit(max(e.exit_code for e in result.failures.values()))


def _export_table(rows: list[dict]) -> str:
    """The artifacts written, one per line under a header, columns aligned."""
    head = ("target", "precision", "size", "export s", "sha256", "model file")
    cells = [
        (
            r["target"],
            r["precision"],
            f"{r['bytes'] / 1024:.0f} KiB",
            f"{r['seconds']:.1f}",
            r["sha256"][:12],
            r["path"],
        )
        for r in rows
    ]
    widths = [max(len(c[i]) for c in [head, *cells]) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in [head, *cells])


@cli.command(
    epilog=EXAMPLE.format("python cli.py diagnose --model my_model.keras --data ./val_images --targets all --n 16")
)
@model_options
@targets_option(DiagnoseRequest)
@click.option(
    "--data",
    default=None,
    help="Inputs: an image folder, a .npz, digits (held-out split; the default for "
    "digits) or synthetic (untrained built-ins).",
)
@click.option(
    "--n", "n", type=int, default=default(DiagnoseRequest, "n"), show_default=True, help="Samples to compare on."
)
@click.option(
    "--sqnr-limit",
    type=float,
    default=default(DiagnoseRequest, "sqnr_limit"),
    show_default=True,
    help="dB below which a layer has diverged.",
)
@artifact_options
@click.option("--json", "as_json", is_flag=True, help="Print the JSON result on stdout.")
def diagnose(as_json: bool, **kw) -> None:
    """Per Keras layer, on every backend: how far int8 is from fp32, and which layers add the most error."""
    from resnet_deploy.quantize.diagnose_run import run_diagnose
    from resnet_deploy.reporting.markdown import diagnose_terminal
    from resnet_deploy.requests import DiagnoseRequest

    req = DiagnoseRequest(
        _model(kw),
        kw.pop("targets"),
        kw.pop("data"),
        kw.pop("n"),
        kw.pop("sqnr_limit"),
        _artifact_options(kw),
        kw.pop("out"),
    )
    result = run_diagnose(req, _progress(as_json))
    click.echo(as_json_text(result) if as_json else diagnose_terminal(result.to_dict()))
