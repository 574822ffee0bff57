"""Core pieces without any backend: cheap import, registry, tolerances, metrics."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from resnet_deploy.config import Precision
from resnet_deploy.errors import InputError
from resnet_deploy.parity import check, compare
from resnet_deploy.target import parse_targets
from resnet_deploy.tolerances import TOLERANCES, parse_overrides, tolerance_for


def test_import_is_cheap():
    code = ("import sys, resnet_deploy, resnet_deploy.cli, resnet_deploy.pipeline, resnet_deploy.parity, "
            "resnet_deploy.target, calibration\n"
            "heavy = [m for m in ('tensorflow', 'keras', 'onnxruntime', 'openvino', 'nncf', 'tf2onnx', 'onnx') "
            "if m in sys.modules]\nassert not heavy, heavy")
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
    with pytest.raises(InputError):
        parse_overrides(["int8.cosin_min=0.5"])
    with pytest.raises(InputError):
        parse_overrides(["int8=0.5"])
