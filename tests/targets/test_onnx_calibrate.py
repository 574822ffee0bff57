"""ONNX Runtime calibration in an optimised session (targets/onnx/calibrate.py): ORT's own
calibrator, tensors and merging, the same ranges up to float rounding; ORT's session one
environment variable away."""

from __future__ import annotations

import numpy as np
import pytest

from resnet_deploy.targets.onnx import calibrate as onnx_calibrate

SAMPLES = 48


@pytest.fixture(scope="module")
def pre_onnx(digits_model, tmp_path_factory):
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from resnet_deploy.targets.onnx.convert import keras_to_onnx

    work = tmp_path_factory.mktemp("onnx-calib")
    keras_to_onnx(digits_model, work / "fp32.onnx", 17)
    quant_pre_process(str(work / "fp32.onnx"), str(work / "pre.onnx"))
    return work


def _ranges(work, samples, name: str, optimized: bool, monkeypatch) -> tuple[dict, int]:
    import onnxruntime as ort
    from onnxruntime.quantization.calibrate import CalibrationMethod, create_calibrator

    from resnet_deploy.targets.onnx import OrtDataReader
    from resnet_deploy._tf import INPUT_NAME
    from resnet_deploy.progress import Progress

    monkeypatch.setenv(onnx_calibrate.ENV, "optimized" if optimized else "ort")
    with onnx_calibrate.optimized_session():
        cal = create_calibrator(
            work / "pre.onnx",
            None,
            augmented_model_path=str(work / f"{name}.onnx"),
            calibrate_method=CalibrationMethod.MinMax,
        )
    level = cal.infer_session.get_session_options().graph_optimization_level
    reduced = len(cal.infer_session.get_outputs())
    with onnx_calibrate.optimized_session():  # compute_data is patched too
        cal.collect_data(OrtDataReader(samples, INPUT_NAME, Progress(), "calibrating"))
        data = cal.compute_data()
    return {k: tuple(float(np.asarray(v).ravel()[0]) for v in data[k].range_value) for k in data}, (
        int(level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL),
        reduced,
    )


def test_optimized_session_gives_orts_ranges(pre_onnx, digits_calib, monkeypatch):
    samples = digits_calib.arrays()[0][:SAMPLES]
    import onnx

    ours, (ours_all, ours_outputs) = _ranges(pre_onnx, samples, "ours", True, monkeypatch)
    theirs, (theirs_all, theirs_outputs) = _ranges(pre_onnx, samples, "theirs", False, monkeypatch)
    assert ours_all == 1 and theirs_all == 0  # the session really is (and is not) optimised
    assert set(ours) == set(theirs) and len(ours) > 10
    relus = {n.output[0]: n.input[0] for n in onnx.load(str(pre_onnx / "pre.onnx")).graph.node if n.op_type == "Relu"}
    assert relus and theirs_outputs - ours_outputs == 2 * len(relus)  # no ReduceMin/Max pair after a Relu
    for out, src in relus.items():  # derived exactly from the input's range
        assert ours[out] == (max(ours[src][0], 0.0), max(ours[src][1], 0.0)), (out, ours[out], ours[src])
    for k, (lo, hi) in theirs.items():
        width = max(hi - lo, 1e-12)
        assert abs(ours[k][0] - lo) <= 1e-4 * width and abs(ours[k][1] - hi) <= 1e-4 * width, (k, ours[k], (lo, hi))


def test_export_records_the_calibration_session(digits_model, digits_calib, tmp_path, monkeypatch):
    from resnet_deploy.config import ExportConfig
    from resnet_deploy.targets.onnx import OnnxTarget

    a = OnnxTarget().export(digits_model, tmp_path, ExportConfig(precision="int8"), digits_calib)
    assert a.details["quantization"]["calibration_session"] == "ORT_ENABLE_ALL", a.details["quantization"]
    monkeypatch.setenv(onnx_calibrate.ENV, "ort")
    assert onnx_calibrate.record()["calibration_session"].startswith("ORT_DISABLE_ALL")
