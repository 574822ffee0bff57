"""The repository's own parity suite: every (target, precision) on the real held-out digits,
and resnet18 in fp32. A breach of the tolerance table fails the test."""

from __future__ import annotations

import pytest

from resnet_deploy.models.source import ModelRef
from resnet_deploy.evaluate.parity_run import run_parity
from resnet_deploy.requests import ParityRequest
from resnet_deploy.backend.target import get_target

DIGITS_CASES = [(t, p.value) for t in ["tflite", "onnx", "openvino"] for p in get_target(t).precisions]


@pytest.fixture(scope="module")
def out_root(tmp_path_factory):
    return tmp_path_factory.mktemp("parity-artifacts")


@pytest.mark.parametrize("target,precision", DIGITS_CASES, ids=[f"{t}-{p}" for t, p in DIGITS_CASES])
def test_digits_parity(target, precision, out_root):
    report = run_parity(ParityRequest(ModelRef("digits"), target, precision, "digits", 450, 2, out=out_root))
    (result,) = report.results
    assert report.samples == 450 and result.metrics.ref_accuracy >= 0.95
    assert result.metrics.accuracy is not None
    assert report.ok, report.breach_lines()


def test_resnet18_fp32_parity_all_backends(tmp_path):
    """Random-init resnet18 at 224 on synthetic images: fp32 only (int8 needs a trained model).
    Width 32 instead of 64 keeps the three conversions quick; the graph is the same."""
    report = run_parity(
        ParityRequest(ModelRef("resnet18", 224, 100, 32), "all", "fp32", "synthetic", 4, 2, out=tmp_path)
    )
    assert [r.name for r in report.results] == ["tflite/fp32", "onnx/fp32", "openvino/fp32"]
    assert report.ok, report.breach_lines()
    for r in report.results:
        assert r.metrics.cosine >= 0.99999


def test_seed_parity_all_backends_fp32_and_int8(tmp_path):
    """The seed network exactly as written (conv bias kept), on every backend, fp32 and int8."""
    report = run_parity(ParityRequest(ModelRef("seed"), "all", "fp32,int8", "synthetic", 8, 2, out=tmp_path))
    assert [r.name for r in report.results] == [
        f"{t}/{p}" for p in ("fp32", "int8") for t in ("tflite", "onnx", "openvino")
    ]
    assert report.ok, report.breach_lines()
    assert report.reference["trained"] is False and report.reference["predictions"] is None  # a feature map
