"""TFLite calibration on all cores (targets/tflite/calibrate.py): the ranges it records are the
float model's own, tensor by tensor, for exactly the tensors TF's calibrator records; TF's own
stays one environment variable away."""

from __future__ import annotations

import numpy as np
import pytest

from resnet_deploy.targets.tflite import calibrate as tflite_calibrate
from resnet_deploy.targets.tflite import TFLiteTarget, keras_converter, load_interpreter_class

SAMPLES = 64


def _calibrated(model, samples, monkeypatch, mode: str) -> tuple[bytes, bool]:
    """The calibrate-only model (float model + min/max) as TFLiteConverter makes it."""
    import tensorflow as tf

    monkeypatch.setenv(tflite_calibrate.ENV, mode)
    converter = keras_converter(tf, model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([x[None]] for x in samples)
    converter._experimental_calibrate_only = True  # noqa: SLF001 - TF's documented debugger path
    with tflite_calibrate.tf_calibrator(load_interpreter_class()[0]) as state:
        out = converter.convert()
    return out, state["used"]


def _ranges(model_bytes: bytes) -> dict[int, tuple[float, float]]:
    from tensorflow.lite.tools import flatbuffer_utils

    sg = flatbuffer_utils.convert_bytearray_to_object(bytearray(model_bytes)).subgraphs[0]
    return {
        i: (float(t.quantization.min[0]), float(t.quantization.max[0]))
        for i, t in enumerate(sg.tensors)
        if t.quantization is not None and t.quantization.min is not None and len(t.quantization.min)
    }


def _reference(model_bytes: bytes, tensors, samples) -> dict[int, tuple[float, float]]:
    """Each tensor's min/max as the builtin kernels compute it with every tensor kept (nothing
    overwritten, no delegate): an independent way to the same numbers."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(
        model_content=model_bytes,
        experimental_preserve_all_tensors=True,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    it.allocate_tensors()
    lo, hi = {i: np.inf for i in tensors}, {i: -np.inf for i in tensors}
    for x in samples:
        it.set_tensor(it.get_input_details()[0]["index"], x[None])
        it.invoke()
        for i in tensors:
            v = it.get_tensor(i)
            lo[i], hi[i] = min(lo[i], float(v.min())), max(hi[i], float(v.max()))
    return {i: (lo[i], hi[i]) for i in tensors}


@pytest.fixture(scope="module")
def samples(digits_calib):
    return digits_calib.arrays()[0][:SAMPLES]


def test_ranges_are_the_float_models_own(digits_model, samples, monkeypatch):
    ours, used = _calibrated(digits_model, samples, monkeypatch, "xnnpack")
    theirs, tf_used = _calibrated(digits_model, samples, monkeypatch, "tf")
    assert used and not tf_used
    mine, tfs = _ranges(ours), _ranges(theirs)
    assert set(mine) == set(tfs) and len(mine) > 10  # the same tensors as TF's calibrator records
    ref = _reference(ours, sorted(mine), samples)
    for i, (lo, hi) in mine.items():
        width = ref[i][1] - ref[i][0]
        assert abs(lo - ref[i][0]) <= 1e-4 * width and abs(hi - ref[i][1]) <= 1e-4 * width, (i, (lo, hi), ref[i])
        # TF's calibrator sees every value we see (and, after in-place ops, some that are not this tensor's)
        assert tfs[i][0] <= lo + 1e-4 * width and tfs[i][1] >= hi - 1e-4 * width, (i, tfs[i], (lo, hi))


def test_export_records_which_calibrator(digits_model, digits_calib, tmp_path, monkeypatch):
    from resnet_deploy.config import ExportConfig

    a = TFLiteTarget().export(digits_model, tmp_path, ExportConfig(precision="int8"), digits_calib)
    assert a.details["quantization"]["calibrator"].startswith("resnet-deploy"), a.details["quantization"]
    monkeypatch.setenv(tflite_calibrate.ENV, "tf")
    out = tmp_path / "tf"
    out.mkdir()
    b = TFLiteTarget().export(digits_model, out, ExportConfig(precision="int8"), digits_calib)
    assert b.details["quantization"]["calibrator"].startswith("tensorflow"), b.details["quantization"]
    assert "RESNET_DEPLOY_TFLITE_CALIBRATOR" in b.details["quantization"]["calibrator_why"]


def test_models_it_cannot_calibrate_fall_back_to_tfs_own(digits_model, digits_calib, tmp_path, monkeypatch):
    """Several subgraphs (control flow) or ops with intermediate tensors (LSTM): TF's calibrator."""
    import copy

    import tensorflow as tf
    from tensorflow.lite.tools import flatbuffer_utils

    from resnet_deploy.config import ExportConfig

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(keras_converter(tf, digits_model).convert()))
    assert tflite_calibrate._loggable(model)  # noqa: SLF001
    two = copy.deepcopy(model)
    two.subgraphs.append(copy.deepcopy(two.subgraphs[0]))
    assert tflite_calibrate._loggable(two) is None  # noqa: SLF001
    lstm_like = copy.deepcopy(model)
    lstm_like.subgraphs[0].operators[0].intermediates = np.array([0], dtype=np.int32)
    assert tflite_calibrate._loggable(lstm_like) is None  # noqa: SLF001
    monkeypatch.setattr(tflite_calibrate, "_loggable", lambda m: None)
    a = TFLiteTarget().export(digits_model, tmp_path, ExportConfig(precision="int8"), digits_calib)
    q = a.details["quantization"]
    assert q["calibrator"].startswith("tensorflow") and "subgraphs" in q["calibrator_why"], q
