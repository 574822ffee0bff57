"""Core pieces without any backend: cheap import, registry, tolerances, metrics."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from resnet_deploy.config import Precision
from resnet_deploy.errors import InputError
from resnet_deploy.evaluate.parity import check, compare
from resnet_deploy.backend.target import parse_targets
from resnet_deploy.evaluate.tolerances import TOLERANCES, parse_overrides, tolerance_for


def test_import_is_cheap():
    code = (
        "import sys, resnet_deploy, resnet_deploy.cli.main, resnet_deploy.exporting.pipeline, resnet_deploy.evaluate.parity, "
        "resnet_deploy.backend.target, resnet_deploy.calibration, resnet_deploy.targets\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'onnxruntime', 'openvino', 'nncf', 'tf2onnx', 'onnx') "
        "if m in sys.modules]\nassert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_parse_targets():
    assert parse_targets("all") == ["tflite", "onnx", "openvino"]
    assert parse_targets("onnx, tflite") == ["onnx", "tflite"]
    with pytest.raises(InputError, match="Unrecognized target='x'"):
        parse_targets("tflite,x")


def test_every_precision_has_a_tolerance():
    assert set(TOLERANCES) == set(Precision)


def test_metrics_and_breaches():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(100, 10))
    labels = ref.argmax(1)
    same = compare(ref, ref.copy(), labels)
    assert same.max_abs == 0 and same.cosine == pytest.approx(1) and same.top1_agreement == 1 and same.acc_drop == 0
    assert not check(same, tolerance_for("fp32"))
    noisy = compare(ref, ref + rng.normal(scale=0.5, size=ref.shape), labels)
    breaches = {b.metric for b in check(noisy, tolerance_for("int8"))}
    assert {"cosine", "top1_agreement", "acc_drop"} <= breaches
    shuffled = compare(ref, ref[::-1].copy(), labels)
    assert shuffled.top1_agreement < 0.3 and shuffled.cosine < 0.5


def test_tolerance_overrides():
    ov = parse_overrides(["int8.cosine_min=0.5", "fp32.max_abs_rel=1e-3"])
    assert tolerance_for("int8", ov[Precision.INT8]).cosine_min == 0.5
    with pytest.raises(
        InputError,
        match=r"^Unknown tolerance field\(s\) \['cosin_min'\]. Known: acc_drop_max, "
        r"cosine_min, max_abs_rel, sqnr_min_db, top1_min.$",
    ):
        parse_overrides(["int8.cosin_min=0.5"])
    with pytest.raises(InputError, match=r"^Tolerance override 'int8=0.5' is not PRECISION.FIELD=VALUE"):
        parse_overrides(["int8=0.5"])
    with pytest.raises(InputError, match=r"^Tolerance override 'int8.cosine_min' is not PRECISION.FIELD=VALUE"):
        parse_overrides(["int8.cosine_min"])
    with pytest.raises(InputError, match="'0.9=7' is not a number"):
        parse_overrides(["int8.cosine_min=0.9=7"])
    with pytest.raises(InputError, match=r"Unknown tolerance field\(s\) \['x.y'\]"):
        parse_overrides(["int8.x.y=1"])


def test_non_finite_tolerance_overrides_are_refused():
    for bad in ("nan", "inf", "-inf"):
        with pytest.raises(InputError, match="must be a finite number"):
            parse_overrides([f"int8.cosine_min={bad}"])
    with pytest.raises(InputError, match="is not a number"):
        parse_overrides(["int8.cosine_min=high"])
    assert parse_overrides(["fp16.top1_min=0.5", "fp16.cosine_min=0.9"]) == {
        Precision.FP16: {"top1_min": 0.5, "cosine_min": 0.9}
    }


@pytest.mark.parametrize(
    "exc,code,line",
    [
        ("InputError('bad --x; pass --x 1.')", 2, "error: bad --x; pass --x 1."),
        ("ExportError('tflite int8 export failed: boom')", 3, "error: tflite int8 export failed: boom"),
        ("BackendUnavailable('no onnxruntime')", 4, "error: no onnxruntime"),
        ("PrecisionMismatch('compiled in bf16')", 4, "error: compiled in bf16"),
        ("ParityError('parity breach: x')", 5, "error: parity breach: x"),
        ("IntegrityError('sha256 differs')", 6, "error: sha256 differs"),
        ("DeployError('device gone')", 1, "error: device gone"),
        ("click.BadParameter('nope')", 2, "error: Invalid value: nope"),
        ("click.Abort()", 130, "error: aborted"),
        ("KeyboardInterrupt()", 130, "error: interrupted"),
        ("click.ClickException('two\\nlines')", 1, "error: two lines"),
        (
            "OSError(28, 'No space left on device', '/d/m.tflite')",
            7,
            "error: the disk is full (the one mounted at '/'): could not write '/d/m.tflite'; free space there or pass --out "
            "on another disk.",
        ),
        (
            "OSError(13, 'Permission denied', '/d')",
            2,
            "error: permission denied for '/d' (Permission denied); pass a writable --out (or fix its permissions).",
        ),
        (
            "OSError(30, 'Read-only file system', '/ro')",
            2,
            "error: permission denied for '/ro' (Read-only file system); pass a writable --out (or fix its permissions).",
        ),
        (
            "OSError(20, 'Not a directory', '/f/x')",
            2,
            "error: cannot use '/f/x': Not a directory; check the path (a folder that is a file, a missing parent...).",
        ),
        ("OSError('odd')", 2, "error: cannot use: odd; check the path (a folder that is a file, a missing parent...)."),
        ("click.exceptions.Exit(3)", 3, None),
    ],
)
def test_the_cli_maps_every_error_to_one_line_and_its_exit_code(capsys, exc, code, line):
    import click

    from resnet_deploy import errors
    from resnet_deploy.cli.main import cli, main

    @cli.command("boom")
    def boom():
        raise eval(exc, {"click": click, "OSError": OSError, **vars(errors)})  # noqa: S307 - the test's own table

    try:
        with pytest.raises(SystemExit) as e:
            main(["boom"])
    finally:
        cli.commands.pop("boom")
    out, err = capsys.readouterr()
    assert e.value.code == code and [ln for ln in err.splitlines() if ln] == ([line] if line else []) and out == ""


def test_help_and_version_exit_0(capsys):
    from resnet_deploy.cli.main import main

    for argv in (["--help"], ["--version"], ["export", "-h"]):
        try:
            main(argv)
        except SystemExit as e:
            assert e.code in (0, None)
    out = capsys.readouterr().out
    assert "Usage: resnet-deploy [OPTIONS] COMMAND" in out and "Usage: resnet-deploy export [OPTIONS]" in out


def test_first_line_and_converter_said():
    from resnet_deploy.errors import converter_said, first_line

    assert first_line(ValueError("\n  first\nsecond")) == "first"
    assert first_line(RuntimeError("")) == "RuntimeError"
    assert first_line(ValueError("x" * 500), 10) == "x" * 10
    assert converter_said(["info\nERROR: bad op\nmore", "Error: last one\ntail"]) == "Error: last one"
    assert converter_said(["nothing to see"]) == "" and converter_said(None) == ""


# The tolerance table, pinned: a change to any limit must be made here too, on purpose, with its reason.
PINNED = {
    # (max_abs_rel, cosine_min, sqnr_min_db, top1_min, acc_drop_max)
    Precision.FP32: (1e-4, 0.99999, 60.0, 0.99, 0.5),  # summation order only: <=2.5e-6 measured; fp16/bf16 must fail
    Precision.FP16: (1e-2, 0.9999, 40.0, 0.98, 1.0),  # fp16 weights: 4e-4 measured, room for fp16 activations
    Precision.BF16: (5e-2, 0.999, 30.0, 0.98, 1.0),  # bf16 arithmetic: 1.2e-2, 0.99995, 39.4 dB on digits
    Precision.DYNAMIC: (5e-2, 0.999, 25.0, 0.97, 2.0),  # int8 weights, float activations: 1.4e-2 measured
    Precision.INT8: (None, 0.98, 12.0, 0.95, 2.0),  # task accuracy within 2 points on real images
}


@pytest.mark.parametrize("precision", list(Precision))
def test_the_tolerance_table_is_what_its_reasons_say(precision):
    t = TOLERANCES[precision]
    assert (t.max_abs_rel, t.cosine_min, t.sqnr_min_db, t.top1_min, t.acc_drop_max) == PINNED[precision]


def test_fp32_tolerance_refuses_an_output_computed_in_half_precision():
    """Its reason, as a check: outputs rounded to fp16 (rel. error up to 4.9e-4) or bf16 are not fp32."""
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(64, 10)).astype(np.float32)
    for half in (np.float16, "bf16"):
        if half == "bf16":
            bits = ref.view(np.uint32) + 0x7FFF + ((ref.view(np.uint32) >> 16) & 1)
            out = (bits & 0xFFFF0000).astype(np.uint32).view(np.float32)
        else:
            out = ref.astype(half).astype(np.float32)
        assert "max_abs_rel" in {b.metric for b in check(compare(ref, out), tolerance_for("fp32"))}, half
    assert not check(compare(ref, ref * (1 + 1e-6)), tolerance_for("fp32"))  # summation-order drift passes
