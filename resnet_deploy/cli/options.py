"""The CLI's shared options (model, artifact, latency protocol) and the helpers that turn them
into request values; cli.py holds the commands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from resnet_deploy.backend.target import declared_options
from resnet_deploy.portable.constants import DEFAULT_PROTOCOL
from resnet_deploy.requests import ARTIFACT_DEFAULTS, DEFAULT_OUT

D = ARTIFACT_DEFAULTS


def _options(*decorators):
    def apply(f):
        for d in reversed(decorators):
            f = d(f)
        return f

    return apply


model_options = _options(
    click.option(
        "--model",
        "model_name",
        default="digits",
        show_default=True,
        help="Built-in model (see `list`) or a path to a .keras/.h5 file or SavedModel dir.",
    ),
    click.option("--input-size", type=int, default=None, help="Square input size (resnet18/34/50; default 224)."),
    click.option("--classes", type=int, default=None, help="Class count (resnet18/34/50; default 1000)."),
    click.option("--width", type=int, default=None, help="ResNet base width (resnet18/34/50; default 64)."),
    click.option(
        "--weights",
        type=click.Path(path_type=Path),
        default=None,
        help="Local weights file for keras:ResNet* (never downloaded; without it: random, speed only).",
    ),
    click.option(
        "--trust-model",
        is_flag=True,
        default=False,
        help="Load a SavedModel or a model with Lambda layers: their code runs on this machine while "
        "loading. Only for files whose source you trust.",
    ),
)

artifact_options = _options(
    click.option(
        "--calib",
        default=None,
        help="Calibration data: an image folder, a .npy/.npz, digits or synthetic "
        "(default: digits for the digits model, synthetic for untrained built-ins; your model needs yours).",
    ),
    click.option(
        "--preprocess",
        default=None,
        help="Pixels to inputs: unit (x/255), raw, symmetric (x/127.5-1), "
        "imagenet-caffe, imagenet-torch (default: what the model says, else unit).",
    ),
    click.option("--mean", default=None, help="Per-channel mean after scaling, e.g. 0.485,0.456,0.406."),
    click.option("--std", default=None, help="Per-channel std after scaling, e.g. 0.229,0.224,0.225."),
    click.option("--scale", type=float, default=None, help="Multiply pixels by this first, e.g. 0.00392156862745098."),
    click.option("--channel-order", default=None, help="rgb, bgr or gray."),
    click.option("--resize", default=None, help="stretch (default) or center-crop (shorter side to size/0.875)."),
    click.option("--calib-size", type=int, default=None, help=f"Calibration samples (default {D['calib_size']})."),
    click.option("--seed", type=int, default=None, help=f"Seed of synthetic calibration data (default {D['seed']})."),
    click.option(
        "--calib-method",
        default=None,
        help=f"ONNX int8 activation ranges: minmax, entropy or percentile (default {D['calib_method']}).",
    ),
    click.option(
        "--repair",
        default=None,
        metavar="cle,bias-correction",
        help="int8: repair the Keras model before every backend converts it: cle (cross-layer "
        "equalization, fp32 function unchanged), bias-correction (int8 weight rounding's mean shift). "
        "Recorded in the manifest (default none).",
    ),
    *(
        click.option(o.flag, o.name, default=None, help=f"{o.help} (default {o.default.value}).")
        for o in declared_options().values()
    ),
    click.option("--opset", type=int, default=None, help=f"ONNX opset (default {D['opset']})."),
    click.option(
        "--device",
        default=None,
        help="The device the model is for: host (this machine), x86-vnni, "
        "x86-avx2 or arm64; decides the int8 formats, recorded in the manifest (default host).",
    ),
    click.option(
        "--out",
        type=click.Path(path_type=Path),
        default=DEFAULT_OUT,
        show_default=True,
        help="Workspace: artifacts in OUT/<model>/<target>/<precision>/.",
    ),
)

tol_option = click.option(
    "--tol",
    "tol",
    multiple=True,
    metavar="PREC.FIELD=VALUE",
    help="Override a tolerance, e.g. --tol int8.cosine_min=0.97 (repeatable; recorded where it is used).",
)

protocol_options = _options(
    click.option(
        "--warmup-s",
        type=float,
        default=None,
        help=f"Minimum warm-up seconds, and >= {DEFAULT_PROTOCOL['warmup_runs']} runs "
        f"(default {DEFAULT_PROTOCOL['warmup_s']}).",
    ),
    click.option(
        "--seconds",
        type=float,
        default=None,
        help=f"Minimum measured seconds, and >= {DEFAULT_PROTOCOL['runs']} runs "
        f"(default {DEFAULT_PROTOCOL['seconds']}).",
    ),
)


def _model(kw: dict, name: str | None = None):
    from resnet_deploy.models.source import ModelRef

    name = kw.pop("model_name") if name is None else name
    return ModelRef(
        name, kw.pop("input_size"), kw.pop("classes"), kw.pop("width"), kw.pop("weights"), kw.pop("trust_model")
    )


def _artifact_options(kw: dict):
    from resnet_deploy.inputs.contract import PreprocessOptions
    from resnet_deploy.requests import ArtifactOptions

    pre = PreprocessOptions(
        kw.pop("preprocess"), kw.pop("mean"), kw.pop("std"), kw.pop("scale"), kw.pop("channel_order"), kw.pop("resize")
    )
    return ArtifactOptions(
        **{
            k: kw.pop(k)
            for k in (
                "calib",
                "calib_size",
                "seed",
                "calib_method",
                "repair",
                "opset",
                "device",
            )
        },
        target_options={n: v for n in declared_options() if (v := kw.pop(n)) is not None},
        preprocess=pre,
    )


def _budget(max_acc_drop: float | None, val: str | None, max_float_layers: int | None):
    if max_acc_drop is None:
        if val is not None or max_float_layers is not None:
            raise click.UsageError("--val and --max-float-layers go with --max-acc-drop; add it or drop them.")
        return None
    if val is None:
        raise click.UsageError("--max-acc-drop needs labelled validation data: pass --val (e.g. --val digits).")
    from resnet_deploy.quantize.budget import DEFAULT_MAX_FLOAT_LAYERS, Budget

    return Budget(max_acc_drop, val, DEFAULT_MAX_FLOAT_LAYERS if max_float_layers is None else max_float_layers)


def _given(option: str) -> bool:
    """Whether the user typed this option (not its default)."""
    ctx = click.get_current_context()
    name = next((p.name for p in ctx.command.params if option in getattr(p, "opts", [])), None)
    return name is not None and ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE


def _progress(as_json: bool = False):
    """Progress on stderr; under --json without bars (a script reads stdout, a log reads lines)."""
    from resnet_deploy.progress import ConsoleProgress

    return ConsoleProgress(bars=not as_json)


def _int_list(value: str, option: str) -> tuple[int, ...]:
    from resnet_deploy.errors import InputError

    try:
        return tuple(int(t) for t in value.split(","))
    except ValueError:
        raise InputError(f"{option} {value!r} is not a comma list of integers, e.g. 1,2.") from None


def default(request: type, name: str) -> Any:
    """A request field's default as an option shows it (one copy of every default: the request's);
    tuples as comma lists, enums as their values."""
    import dataclasses

    found = {f.name: f for f in dataclasses.fields(request)}[name]
    value = found.default if found.default is not dataclasses.MISSING else found.default_factory()  # type: ignore[operator]
    if isinstance(value, tuple):
        return ",".join(str(getattr(v, "value", v)) for v in value)
    return getattr(value, "value", value)


def targets_option(request: type) -> Any:
    """--targets (or --target): the targets a command works on, its default the request's."""
    return click.option(
        "--targets",
        "--target",
        "targets",
        default=default(request, "targets"),
        show_default=True,
        help="tflite,onnx,openvino or all (a comma list).",
    )


def precisions_option(request: type) -> Any:
    """--precision for commands taking several: its default the request's."""
    return click.option(
        "--precision",
        default=default(request, "precisions"),
        show_default=True,
        help="One precision or a comma list, e.g. fp32,int8.",
    )
