"""ONNX Runtime and OpenVINO targets: real conversions and runtimes, numbers against the table."""
from __future__ import annotations

import pytest

from resnet_deploy import models
from resnet_deploy.config import ExportConfig, Precision
from resnet_deploy.cpu import cpu_flags
from resnet_deploy.errors import PrecisionMismatch
from resnet_deploy.latency import Protocol, measure
from resnet_deploy.parity import check, compare
from resnet_deploy.target import get_target
from resnet_deploy.tolerances import tolerance_for
from targets.openvino import OpenVINORunner
from tests.conftest import keras_outputs, random_inputs

BACKENDS = ["onnx", "openvino"]


def _export(target, model, tmp_path, precision, calib=None):
    out = tmp_path / f"{target}-{precision}"
    out.mkdir()
    return get_target(target).export(model, out, ExportConfig(precision=precision), calib)


def _run(target, artifact, x):
    with get_target(target).runner(artifact, threads=2) as r:
        return r.predict(x)


@pytest.fixture(scope="module")
def small_models():
    return {"seed": models.seed(), "resnet18": models.resnet18(input_shape=(96, 96, 3), classes=100)}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["seed", "resnet18"])
def test_fp32_matches_keras(backend, name, small_models, tmp_path):
    model = small_models[name]
    x = random_inputs(model, n=3)
    m = compare(keras_outputs(model, x), _run(backend, _export(backend, model, tmp_path, "fp32"), x))
    assert m.cosine >= 0.99999, m
    assert not check(m, tolerance_for("fp32")), m


@pytest.mark.parametrize("backend", BACKENDS)
def test_fp16_matches_keras(backend, small_models, tmp_path):
    model = small_models["resnet18"]
    x = random_inputs(model, n=2)
    m = compare(keras_outputs(model, x), _run(backend, _export(backend, model, tmp_path, "fp16"), x))
    assert not check(m, tolerance_for("fp16")), m


@pytest.mark.parametrize("backend", BACKENDS)
def test_int8_digits_keeps_accuracy_within_2_points(backend, digits_model, digits_test, digits_ref, digits_calib, tmp_path):
    x, y = digits_test
    a = _export(backend, digits_model, tmp_path, "int8", digits_calib)
    m = compare(digits_ref, _run(backend, a, x), y)
    assert m.acc_drop <= 2.0, m
    assert not check(m, tolerance_for("int8")), m


def test_onnx_int8_manifest_says_which_format(digits_model, digits_calib, tmp_path):
    a = _export("onnx", digits_model, tmp_path, "int8", digits_calib)
    q = a.details["quantization"]
    assert q["format"] == "qdq" and q["weights"] == "int8" and q["per_channel"]
    assert q["activations"] == ("uint8" if "avx2" in cpu_flags() else "int8")
    assert a.inputs[0].layout == "NHWC" and a.inputs[0].shape[1:] == [32, 32, 3]


def test_openvino_fp32_runs_in_f32_and_bf16_would_breach(small_models, tmp_path):
    """Fails if OpenVINO fp32 silently runs in bf16: the runner must read back f32, and the
    fp32 tolerance must be tight enough to catch a bf16 execution on this CPU."""
    model = small_models["resnet18"]
    x = random_inputs(model, n=3)
    ref = keras_outputs(model, x)
    a = _export("openvino", model, tmp_path, "fp32")
    assert a.details["openvino"]["weights_compressed_to_fp16"] is False
    with get_target("openvino").runner(a, threads=2) as r:
        assert r.info()["inference_precision"] == "f32"
        assert not check(compare(ref, r.predict(x)), tolerance_for("fp32"))
    if not {"avx512_bf16", "amx_bf16"} & cpu_flags():
        pytest.skip("this CPU has no bf16 path: OpenVINO cannot silently use bf16 here")
    with OpenVINORunner(a.model_file, threads=2, inference_precision=None) as r:  # the plugin's own default
        assert r.info()["inference_precision"] == "bf16"
        breaches = {b.metric for b in check(compare(ref, r.predict(x)), tolerance_for("fp32"))}
    assert "max_abs_rel" in breaches


def test_openvino_runner_refuses_a_precision_it_did_not_ask_for(small_models, tmp_path, monkeypatch):
    import openvino as ov

    a = _export("openvino", small_models["seed"], tmp_path, "fp32")
    real_compile = ov.Core.compile_model

    class Liar:
        def __init__(self, compiled):
            self.compiled = compiled

        def get_property(self, key):
            return ov.Type.bf16 if key == "INFERENCE_PRECISION_HINT" else self.compiled.get_property(key)

    monkeypatch.setattr(ov.Core, "compile_model", lambda self, *a, **k: Liar(real_compile(self, *a, **k)))
    with pytest.raises(PrecisionMismatch, match="in bf16, not the requested f32"):
        OpenVINORunner(a.model_file, inference_precision="f32").activate()


@pytest.fixture(scope="module")
def resnet18_224():
    from calibration import from_spec

    model = models.resnet18()
    return model, from_spec("synthetic", model.input_shape, size=16)


@pytest.mark.parametrize("backend", BACKENDS)
def test_int8_is_faster_than_fp32_on_resnet18(backend, resnet18_224, tmp_path):
    """A comparison within one run, not an absolute time: int8 p50 < fp32 p50 at 2 threads."""
    model, calib = resnet18_224
    x = random_inputs(model, n=1)
    protocol = Protocol(warmup_runs=5, warmup_s=0.3, runs=30, seconds=1.0)
    p50 = {}
    for precision in ("fp32", "int8"):
        a = _export(backend, model, tmp_path, precision, calib if precision == "int8" else None)
        with get_target(backend).runner(a, threads=2) as r:
            p50[precision] = measure(r, x, protocol).p50
    assert p50["int8"] < p50["fp32"], p50


def test_all_targets_share_one_calibration_and_survive_a_failure(digits_model, digits_calib, tmp_path):
    from resnet_deploy import pipeline
    from resnet_deploy.artifact import Artifact
    from resnet_deploy.target import Target, register, unregister
    from resnet_deploy.workspace import Workspace

    class Broken(Target):
        name = "broken"
        precisions = tuple(Precision)

        def export_impl(self, *args, **kwargs):
            raise RuntimeError("converter exploded")

    register("broken", Broken)
    try:
        res = pipeline.export_model("digits", digits_model, ["tflite", "broken", "onnx", "openvino"],
                                    ExportConfig(precision="int8"), digits_calib, Workspace(tmp_path))
    finally:
        unregister("broken")
    assert set(res.failures) == {"broken"} and "converter exploded" in str(res.failures["broken"])
    assert [a.target for a in res.artifacts] == ["tflite", "onnx", "openvino"]
    prints = {Artifact.load(a.path).manifest["calibration"]["fingerprint_sha256"] for a in res.artifacts}
    assert prints == {digits_calib.fingerprint}
    assert not (tmp_path / "digits" / "broken" / "int8").exists()
    assert not list((tmp_path / "digits" / "broken").iterdir())  # staging dir removed
    for a in res.artifacts:
        Artifact.load(a.path).verify()
