"""One calibration pass for two backends (calibration/ranges.py): a TFLite int8 export takes the
activation ranges ONNX Runtime measured in the same export, and they are the ranges its own pass
would have found; a tensor it cannot find, or probes that are not its samples, and it calibrates
itself, saying why."""

from __future__ import annotations

import numpy as np
import pytest

from resnet_deploy.calibration.ranges import PROBES, MeasuredRanges, fingerprint, match
from resnet_deploy.exporting import pipeline
from resnet_deploy.config import ExportConfig
from resnet_deploy.store.workspace import Workspace
from resnet_deploy.targets.onnx import calibrate as onnx_calibrate
from resnet_deploy.targets.tflite import calibrate as tflite_calibrate
from resnet_deploy.targets.tflite import keras_converter, load_interpreter_class


def _quant_params(path) -> dict[str, tuple[float, int]]:
    from ai_edge_litert.interpreter import Interpreter

    out = {}
    for d in Interpreter(model_path=str(path)).get_tensor_details():
        scales, zps = d["quantization_parameters"]["scales"], d["quantization_parameters"]["zero_points"]
        if np.dtype(d["dtype"]) == np.int8 and len(scales) == 1:  # activations (weights are per-channel)
            out[d["name"]] = (float(scales[0]), int(zps[0]))
    return out


def test_tflite_takes_the_ranges_onnx_measured_and_they_are_its_own(digits_model, digits_calib, tmp_path):
    config = ExportConfig(precision="int8")
    nncf = ExportConfig(precision="int8", options={"openvino_int8": "nncf"})  # ORT's tail in the worker
    shared = pipeline.export_model(
        pipeline.Loaded.of("digits", digits_model, digits_calib),
        ["tflite", "onnx", "openvino"],
        nncf,
        Workspace(tmp_path / "all"),
    )
    alone = pipeline.export_model(
        pipeline.Loaded.of("digits", digits_model, digits_calib), ["tflite"], config, Workspace(tmp_path / "alone")
    )
    assert shared.ok and alone.ok, (shared.failures, alone.failures)
    q_shared = shared.artifacts[0].manifest["quantization"]
    assert q_shared["calibrator"].startswith("shared: ONNX Runtime"), q_shared
    assert "matched on 2 probe samples" in q_shared["calibrator_why"]
    q_alone = alone.artifacts[0].manifest["quantization"]
    assert q_alone["calibrator"].startswith("resnet-deploy") and "no earlier target" in q_alone["ranges_not_shared"]
    assert "worker_process" in shared.artifacts[1].manifest["export"]  # the ranges crossed the pipe
    a, b = _quant_params(shared.artifacts[0].model_file), _quant_params(alone.artifacts[0].model_file)
    assert a.keys() == b.keys() and len(a) > 10
    for name in a:  # the same statistic from another runtime: equal up to float rounding
        (sa, za), (sb, zb) = a[name], b[name]
        assert abs(sa - sb) <= 1e-4 * sb and abs(za - zb) <= 1, (name, a[name], b[name])


def _calibrate_only(model, samples, measured) -> tuple[bytes, dict]:
    import tensorflow as tf

    converter = keras_converter(tf, model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([x[None]] for x in samples)
    converter._experimental_calibrate_only = True  # noqa: SLF001 - TF's documented debugger path
    with tflite_calibrate.tf_calibrator(load_interpreter_class()[0], measured=measured) as state:
        out = converter.convert()
    return out, state


def test_ranges_measured_on_other_samples_are_not_taken(digits_model, digits_calib):
    samples = digits_calib.arrays()[0][:24]
    own, state = _calibrate_only(digits_model, samples, None)
    assert state["used"] and not state["shared"]
    elsewhere = MeasuredRanges("elsewhere", 24, "0" * 64, {}, {})
    again, state = _calibrate_only(digits_model, samples, elsewhere)
    assert not state["shared"] and "not the ones the ranges were measured with" in state["how"]
    assert again == own  # the fallback is the whole own pass, the probe samples included


def _measured(tensors: dict[str, list[np.ndarray]], ranges: dict[str, tuple[float, float]]) -> MeasuredRanges:
    return MeasuredRanges("test", 10, "sha", ranges, {n: [fingerprint(v) for v in vs] for n, vs in tensors.items()})


def test_match_finds_a_tensor_by_its_values_in_any_layout_and_refuses_guesses():
    rng = np.random.default_rng(0)
    act = [np.maximum(rng.normal(size=(1, 6, 6, 4)), 0).astype(np.float32) for _ in range(PROBES)]
    other = [rng.normal(size=(1, 6, 6, 4)).astype(np.float32) for _ in range(PROBES)]
    nchw = [a.transpose(0, 3, 1, 2) for a in act]
    measured = _measured({"relu_nchw": nchw, "conv": other}, {"relu_nchw": (0.0, 4.5), "conv": (-4.0, 4.0)})
    prints = {"act": np.array([fingerprint(a) for a in act]), "pre": np.array([fingerprint(o) for o in other])}
    assert match(measured, prints)[0] == {"act": (0.0, 4.5), "pre": (-4.0, 4.0)}
    nudged = {"act": prints["act"] * np.array([1, 1, 1.01, 1, 1])}  # max 1% off: another tensor
    ranges, why = match(measured, nudged)
    assert ranges is None and "no counterpart" in why
    twins = _measured({"a": nchw, "b": act}, {"a": (0.0, 4.5), "b": (0.0, 9.0)})  # equal on the probes only
    ranges, why = match(twins, {"act": prints["act"]})
    assert ranges is None and "ranges differ" in why
    twins.ranges["b"] = (0.0, 4.5)  # equal everywhere: either is the range
    assert match(twins, {"act": prints["act"]})[0] == {"act": (0.0, 4.5)}


def test_only_minmax_ranges_are_shared(monkeypatch):
    assert "entropy" in onnx_calibrate.share_problem("entropy")
    monkeypatch.setenv("RESNET_DEPLOY_SHARED_RANGES", "0")
    assert onnx_calibrate.share_problem("minmax") == "RESNET_DEPLOY_SHARED_RANGES=0"


@pytest.mark.parametrize("broken", ["per_channel", "nan"])
def test_a_cache_that_is_not_per_tensor_finite_ranges_is_not_shared(tmp_path, broken):
    from onnxruntime.quantization.calibrate import CalibrationMethod, TensorsData, save_tensors_data

    value = (
        (np.array([0.0, 1.0], np.float32), np.array([2.0, 3.0], np.float32))
        if broken == "per_channel"
        else (np.float32(np.nan), np.float32(1.0))
    )
    save_tensors_data(TensorsData(CalibrationMethod.MinMax, {"t": value}), tmp_path / "r.json")
    assert onnx_calibrate._scalar_ranges(tmp_path / "r.json") is None  # noqa: SLF001
    save_tensors_data(
        TensorsData(CalibrationMethod.MinMax, {"t": (np.float32(-1), np.float32(2))}), tmp_path / "r.json"
    )
    assert onnx_calibrate._scalar_ranges(tmp_path / "r.json") == {"t": (-1.0, 2.0)}  # noqa: SLF001


def test_a_failed_fingerprint_run_costs_the_sharing_not_the_onnx_export(tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx model")
    prints, why = onnx_calibrate.probe_prints(broken, np.zeros((PROBES, 4, 4, 3), np.float32), 1)
    assert prints is None and why.startswith("fingerprinting the ONNX tensors failed")
