"""TFLite target: real conversions, real interpreter, numbers against the tolerance table."""

from __future__ import annotations

import numpy as np
import pytest

from resnet_deploy.models import source as models
from resnet_deploy.config import ExportConfig
from resnet_deploy.evaluate.parity import check, compare
from resnet_deploy.evaluate.tolerances import tolerance_for
from resnet_deploy.targets.tflite import TFLiteTarget
from tests.support.artifact_facts import dominant, tflite_weight_dtypes
from tests.support.models import keras_outputs, random_inputs


def _export(model, tmp_path, precision, calib=None, io_dtype="int8"):
    out = tmp_path / precision
    out.mkdir()
    return TFLiteTarget().export(model, out, ExportConfig(precision=precision, options={"io_dtype": io_dtype}), calib)


def _run(artifact, x):
    with TFLiteTarget().runner(artifact, threads=2) as r:
        return r.predict(x)


@pytest.mark.parametrize("name", ["seed", "resnet18"])
@pytest.mark.parametrize("precision", ["fp32", "fp16", "dynamic"])
def test_float_precisions_match_keras(name, precision, tmp_path):
    # seeded weights (load_model): an unseeded random ResNet's logits can tie, and the test order
    # (pytest-randomly) would then decide whether top-1 agrees
    model = models.load_model("seed")[1] if name == "seed" else models.load_model("resnet18", 64, 10)[1]
    x = random_inputs(model)
    ref = keras_outputs(model, x)
    a = _export(model, tmp_path, precision)
    out = _run(a, x)
    m = compare(ref, out)
    assert not check(m, tolerance_for(precision)), m
    # the file really holds the promised weights: an export that silently stays fp32 fails here
    weights = tflite_weight_dtypes(a.model_file)
    assert dominant(weights) == {"fp32": "float32", "fp16": "float16", "dynamic": "int8"}[precision], weights


def test_int8_digits_keeps_accuracy_within_2_points(digits_model, digits_test, digits_ref, digits_calib, tmp_path):
    x, y = digits_test
    a = _export(digits_model, tmp_path, "int8", digits_calib)
    assert a.inputs[0].dtype == "int8" and a.outputs[0].dtype == "int8"
    assert a.inputs[0].quant["scale"] > 0
    m = compare(digits_ref, _run(a, x), y)
    assert m.acc_drop <= 2.0, m
    assert not check(m, tolerance_for("int8")), m


def test_int8_float_io_option(digits_model, digits_test, digits_ref, digits_calib, tmp_path):
    x, y = digits_test
    a = _export(digits_model, tmp_path, "int8", digits_calib, io_dtype="float")
    assert a.inputs[0].dtype == "float32" and a.inputs[0].quant is None
    m = compare(digits_ref[:100], _run(a, x[:100]), y[:100])
    assert not check(m, tolerance_for("int8")), m


def test_quantized_io_roundtrip(digits_model, digits_calib, digits_test, tmp_path):
    a = _export(digits_model, tmp_path, "int8", digits_calib)
    x = digits_test[0][:8]
    with TFLiteTarget().runner(a) as r:
        q = r.quantize_input(x)
        assert q.dtype == np.int8
        scale, zp = a.inputs[0].quant["scale"], a.inputs[0].quant["zero_point"]
        back = (q.astype(np.float32) - zp) * scale
        # inside the calibrated range the round trip is exact to half a quantization step
        assert np.abs(back - x).max() <= scale / 2 + 1e-6
        raw = r.run_raw(r.quantize_input(x[:1]))
        assert raw.dtype == np.int8
        np.testing.assert_allclose(
            r.dequantize_output(raw),
            (raw.astype(np.float32) - a.outputs[0].quant["zero_point"]) * a.outputs[0].quant["scale"],
        )
        # callers pass floats; a wrong-dtype or wrong-shape input is refused, not reinterpreted
        from resnet_deploy.errors import InputError

        with pytest.raises(InputError, match="float32"):
            r.infer(q[:1])
        with pytest.raises(InputError, match="shape"):
            r.infer(np.zeros((1, 16, 16, 3), np.float32))


def test_corrupt_tflite_is_a_clear_error(tmp_path):
    from resnet_deploy.errors import InputError
    from resnet_deploy.targets.tflite import TFLiteRunner

    bad = tmp_path / "model.tflite"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(InputError, match="not a valid TFLite model"):
        TFLiteRunner(bad).activate()


def test_converter_skips_the_savedmodel_round_trip_with_the_same_graph(digits_model, digits_test):
    """keras_converter freezes the inference function in memory instead of from_keras_model's
    SavedModel write and read: the same ops in the same order, the same outputs, bit for bit."""
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    from resnet_deploy.targets.tflite import keras_converter

    x = digits_test[0][:8]
    got = {}
    for how, converter in (
        ("ours", keras_converter(tf, digits_model)),
        ("keras", tf.lite.TFLiteConverter.from_keras_model(digits_model)),
    ):
        it = Interpreter(model_content=converter.convert())
        it.resize_tensor_input(it.get_input_details()[0]["index"], list(x.shape))
        it.allocate_tensors()
        it.set_tensor(it.get_input_details()[0]["index"], x)
        it.invoke()
        got[how] = ([op["op_name"] for op in it._get_ops_details()], it.get_tensor(it.get_output_details()[0]["index"]))
    assert got["ours"][0] == got["keras"][0]
    np.testing.assert_array_equal(got["ours"][1], got["keras"][1])
    assert got["ours"][1].shape == (8, 10)
