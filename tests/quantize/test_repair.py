"""Repairs on the Keras model: cross-layer equalization keeps the fp32 function on every family
we accept and evens out an outlier channel; bias correction takes out the mean shift int8 weight
rounding makes; groups that cannot be rescaled are left alone and say why."""

from __future__ import annotations

import numpy as np
import pytest

from resnet_deploy.exporting import biascorrect, equalize
from resnet_deploy.config import parse_repairs
from resnet_deploy.exporting.repair import repaired

# CLE multiplies and divides by the same per-channel scales (up to ~1e3): fp32 rounds each
# product to ~1e-7 relative, through ~20 layers; 1e-4 of the output's peak is far above that and
# far below any change of function (a wrong scale moves outputs by O(peak)).
CLE_MAX_REL = 1e-4


class _Calib:
    """A calibration set of given arrays (what CalibrationSet offers repairs: len, batches)."""

    def __init__(self, x: np.ndarray) -> None:
        self.x = x

    def __len__(self) -> int:
        return len(self.x)

    def batches(self, size: int = 32):
        for s in range(0, len(self.x), size):
            yield self.x[s : s + size], None


def _digits_outlier():
    from tests.support import outlier

    return outlier.build()


def _holdout_outlier():
    from tests.support import holdout

    return holdout.build(holdout.K)


def _resnet50v2():  # pre-activation bottlenecks, biased convs, max-pool shortcuts, softmax head
    import keras

    return keras.applications.ResNet50V2(weights=None, input_shape=(64, 64, 3), classes=10)


def _resnet18():
    from resnet_deploy.models.architectures import resnet18

    return resnet18((64, 64, 3), classes=10)


FAMILIES = {"digits-outlier": _digits_outlier, "holdout-outlier": _holdout_outlier, "resnet50v2": _resnet50v2}


def _calib(model, n: int = 16) -> _Calib:
    from resnet_deploy.models.digits import dataset

    if model.input_shape[1] == 32:
        return _Calib(dataset("train")[0][:n])
    return _Calib(np.random.default_rng(0).random((n, *model.input_shape[1:]), dtype=np.float32))


def _equalized_everywhere(model, calib):
    """CLE on every group that can be rescaled, balanced or not (the repair itself leaves balanced
    groups alone): what proves the rescaling keeps the function on every kind of group."""
    from resnet_deploy.exporting.repair import _clone, channel_stats

    fixed = _clone(model)
    stats = channel_stats(fixed, equalize.members(fixed), calib, "absmax")
    return fixed, equalize.equalize(fixed, stats, min_spread=0.0)


@pytest.mark.parametrize("family", list(FAMILIES) + ["resnet18"])
def test_cle_keeps_the_fp32_function(family):
    model = _resnet18() if family == "resnet18" else FAMILIES[family]()
    calib = _calib(model)
    fixed, cle = _equalized_everywhere(model, calib)
    assert len(cle["groups"]) >= 3, family  # something was rescaled
    assert any(g["max_scale"] > 1.05 or g["min_scale"] < 0.95 for g in cle["groups"])
    x = calib.x[:8]
    want, got = np.asarray(model(x)), np.asarray(fixed(x))
    assert np.abs(got - want).max() <= CLE_MAX_REL * np.abs(want).max(), family
    assert [w.shape for w in fixed.get_weights()] == [w.shape for w in model.get_weights()]


def test_cle_leaves_a_balanced_model_as_it_is():
    """An untrained ResNet-18 has no outlier channel (every group's spread is under 8x): the repair
    changes nothing, so a model whose plain int8 is fine cannot get worse."""
    model = _resnet18()
    fixed, record = repaired(model, ("cle",), _calib(model))
    (cle,) = record["applied"]
    assert cle["groups"] == [] and cle["balanced_groups"] >= 5
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), fixed.get_weights()))


@pytest.mark.parametrize("family", ["digits-outlier", "holdout-outlier"])
def test_cle_evens_out_the_outlier_channel(family):
    """The group that carries the x1000 channel: its largest channel range over the median one
    falls from ~1000 to a few; the channel's scale is ~1000."""
    model = FAMILIES[family]()
    _, record = repaired(model, ("cle",), _calib(model, 32))
    worst = max(record["applied"][0]["groups"], key=lambda g: g["range_spread_before"])
    assert worst["range_spread_before"] > 300 and worst["range_spread_after"] < 5, worst
    assert worst["max_scale"] > 300


def _conv_net(middle):
    """input -> conv -> `middle` -> conv: the first conv's output group ends at `middle`."""
    import keras
    from keras import layers as L

    x = inp = keras.Input((8, 8, 4))
    a = L.Conv2D(6, 3, padding="same", name="first")(x)
    b = middle(a)
    y = L.Conv2D(5, 1, name="second")(b)
    return keras.Model(inp, L.GlobalAveragePooling2D()(y))


@pytest.mark.parametrize(
    "middle, why",
    [
        (
            lambda t: __import__("keras").layers.ReLU(max_value=6.0, name="relu6")(t),
            "relu6 (ReLU) reads first and cannot absorb",
        ),
        (
            lambda t: __import__("keras").layers.Concatenate(name="cat")([t, t]),
            "cat (Concatenate) reads first and cannot absorb",
        ),
        (lambda t: __import__("keras").layers.Activation("sigmoid", name="sig")(t), "sig (Activation)"),
    ],
)
def test_what_is_not_positively_homogeneous_is_left_alone(middle, why):
    model = _conv_net(middle)
    first = next(g for g in equalize.find_groups(model) if "first" in g.producers)
    assert first.why_not is not None and why in first.why_not
    _, record = repaired(model, ("cle",), _Calib(np.random.default_rng(1).random((4, 8, 8, 4), dtype=np.float32)))
    assert not any("first" in g["producers"] for g in record["applied"][0]["groups"])


def test_a_group_that_reaches_the_output_is_left_alone_and_a_softmax_head_reads_fine():
    import keras
    from keras import layers as L

    x = inp = keras.Input((8, 8, 4))
    a = L.Conv2D(6, 3, padding="same", name="first")(x)
    out = L.Conv2D(6, 1, name="last")(L.ReLU()(a))
    groups = {g.producers[0]: g for g in equalize.find_groups(keras.Model(inp, out))}
    assert groups["last"].why_not == "last is a model output" and groups["first"].why_not is None
    head = L.Dense(3, activation="softmax", name="head")(L.GlobalAveragePooling2D()(out))
    groups = {g.producers[0]: g for g in equalize.find_groups(keras.Model(inp, head))}
    assert groups["last"].why_not is None and groups["last"].readers == ["head"]


def _biased_rounding_model():
    """A 1x1 conv whose int8 rounding leans one way: per output channel one weight of 1.0 sets
    the int8 step (1/127), the 15 others are 0.45 of a step and all round to 0."""
    import keras
    from keras import layers as L

    x = inp = keras.Input((6, 6, 16))
    model = keras.Model(inp, L.Conv2D(4, 1, name="conv")(x))
    w = np.full((1, 1, 16, 4), 0.45 / 127, np.float32)
    w[0, 0, 0, :] = 1.0
    model.get_layer("conv").set_weights([w, np.zeros(4, np.float32)])
    return model


def test_bias_correction_takes_out_the_shift_int8_rounding_makes():
    """In Keras with the weights on the int8 grid the backends use: the mean output error falls
    from ~0.027 (15 inputs of mean 0.5 each losing 0.45/127) to float noise."""
    model = _biased_rounding_model()
    x = np.random.default_rng(0).random((32, 6, 6, 16), dtype=np.float32)
    fixed, record = repaired(model, ("bias-correction",), _Calib(x))
    assert record["applied"][0]["layers"] == 1
    want = np.asarray(model(x)).mean(axis=(0, 1, 2))

    def rounded(m):
        w, b = m.get_layer("conv").get_weights()
        m.get_layer("conv").set_weights([biascorrect.quantized(w), b])
        return np.asarray(m(x)).mean(axis=(0, 1, 2))

    before, after = np.abs(rounded(_biased_rounding_model()) - want), np.abs(rounded(fixed) - want)
    assert before.min() > 0.02 and after.max() < 0.002, (before, after)


@pytest.mark.parametrize("target", ["tflite", "onnx", "openvino"])
def test_bias_correction_holds_on_every_backend(target, tmp_path, capsys):
    """A 3x3 conv, 26 of each output channel's 27 weights 0.45 of an int8 step, exported by the
    real converters: the mean output error against Keras falls at least 10x (measured: TFLite
    0.046 -> 0.0002)."""
    import keras
    from keras import layers as L

    from resnet_deploy.backend.target import get_target
    from resnet_deploy.store.artifact import Artifact
    from tests.support.cli import run_cli

    inp = keras.Input((8, 8, 3))
    model = keras.Model(inp, L.Conv2D(4, 3, name="conv")(inp), name="rounding")
    w = np.full((3, 3, 3, 4), 0.45 / 127, np.float32)
    w[0, 0, 0, :] = 1.0
    model.get_layer("conv").set_weights([w, np.zeros(4, np.float32)])
    model.save(tmp_path / "rounding.keras")
    x = np.random.default_rng(0).random((64, 8, 8, 3), dtype=np.float32)
    np.save(tmp_path / "calib.npy", x)
    want = np.asarray(model(x)).mean(axis=(0, 1, 2))
    errors = []
    for out, repair in ((tmp_path / "plain", []), (tmp_path / "fixed", ["--repair", "bias-correction"])):
        common = ["--model", str(tmp_path / "rounding.keras"), "--calib", str(tmp_path / "calib.npy")]
        code, _, err = run_cli(
            capsys, "export", *common, "--preprocess", "raw", "--target", target, "--out", str(out), *repair
        )
        assert code == 0, err
        with get_target(target).runner(Artifact.load(out / "rounding" / target / "int8")) as run:
            errors.append(float(np.abs(run.predict(x).mean(axis=(0, 1, 2)) - want).max()))
    assert errors[0] > 0.03 and errors[1] < errors[0] / 10, errors


def test_repair_names_are_checked():
    assert parse_repairs("bias-correction, CLE") == ("cle", "bias-correction")
    assert parse_repairs(None) == ()
    with pytest.raises(Exception, match="--repair 'adaround' is not a repair; choose from cle, bias-correction"):
        parse_repairs("cle,adaround")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--repair", "adaround"], "--repair 'adaround' is not a repair; choose from cle, bias-correction"),
        (["--repair", ","], "is not a repair"),
        (["--repair", "cle", "--precision", "fp32"], "--repair applies to int8 exports (asked: fp32)"),
        (["--repair", "cle", "--max-acc-drop", "1", "--val", "digits"], "--max-acc-drop tries the repairs itself"),
    ],
)
def test_repair_bad_input_is_one_line_and_exit_2(args, message, tmp_path, capsys):
    from tests.support.cli import run_cli

    code, _, err = run_cli(capsys, "export", "--target", "onnx", *args, "--out", str(tmp_path))
    assert code == 2 and err.count("error:") == 1 and message in err and "Traceback" not in err, err
    assert not (tmp_path / "digits").exists()
