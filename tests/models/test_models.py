from __future__ import annotations

import numpy as np
import pytest

from resnet_deploy.models import source as models
from resnet_deploy.errors import InputError


def test_seed_structure_is_the_seed():
    m = models.seed()
    assert m.input_shape == (None, 64, 64, 3)
    assert m.output_shape == (None, 64, 64, 64)
    kinds = [type(layer).__name__ for layer in m.layers]
    block = ["Conv2D", "BatchNormalization", "ReLU", "Conv2D", "BatchNormalization", "Add", "ReLU"]
    assert kinds == ["InputLayer", "Conv2D", *block, *block]
    stem = m.get_layer("stem_conv")
    assert stem.filters == 64 and stem.kernel_size == (3, 3) and stem.padding == "same"
    for b in ("block1", "block2"):
        add = m.get_layer(f"{b}_add")
        # the Add joins the block input (the previous ReLU or the stem) with the second BN
        parents = {t._keras_history.operation.name for t in add.input}
        assert f"{b}_bn2" in parents
        assert parents - {f"{b}_bn2"} == ({"stem_conv"} if b == "block1" else {"block1_out"})
        for conv in (f"{b}_conv1", f"{b}_conv2"):
            layer = m.get_layer(conv)
            assert layer.filters == 64 and layer.kernel_size == (3, 3) and layer.padding == "same"


def _the_seed_as_written():
    """The mission's seed snippet, re-typed verbatim (Keras 3 imports)."""
    from keras.layers import Add, BatchNormalization, Conv2D, Input, ReLU
    from keras.models import Model

    def residual_block(x, filters, kernel_size=3):
        shortcut = x
        x = Conv2D(filters, kernel_size, padding="same")(x)
        x = BatchNormalization()(x)
        x = ReLU()(x)
        x = Conv2D(filters, kernel_size, padding="same")(x)
        x = BatchNormalization()(x)
        x = Add()([shortcut, x])
        x = ReLU()(x)
        return x

    inputs = Input(shape=(64, 64, 3))
    x = Conv2D(64, 3, padding="same")(inputs)
    x = residual_block(x, 64)
    x = residual_block(x, 64)
    return Model(inputs, x)


def _layer_facts(layer):
    facts = {"class": type(layer).__name__, "output_shape": tuple(layer.output.shape)}
    for attr in ("filters", "kernel_size", "padding", "use_bias", "strides", "activation"):
        if hasattr(layer, attr):
            v = getattr(layer, attr)
            facts[attr] = getattr(v, "__name__", v)
    return facts


def test_seed_is_exactly_the_seed_snippet():
    """Layer by layer (class, filters, kernel, padding, bias, output shape) and parameter count."""
    ours, theirs = models.seed(), _the_seed_as_written()
    assert [_layer_facts(a) for a in ours.layers] == [_layer_facts(b) for b in theirs.layers]
    assert ours.count_params() == theirs.count_params() == 150_528
    nobias = models.seed_nobias()
    assert nobias.count_params() == 150_528 - 4 * 64  # the named variant: four block convs without bias


def test_residual_block_keeps_the_seed_signature():
    import inspect

    params = list(inspect.signature(models.residual_block).parameters.values())
    assert [p.name for p in params[:3]] == ["x", "filters", "kernel_size"] and params[2].default == 3


@pytest.mark.parametrize(
    "name,params",
    [
        # trainable parameter counts of the reference architectures (torchvision's numbers:
        # running BN statistics are buffers there, non-trainable weights here)
        ("resnet18", 11_689_512),
        ("resnet34", 21_797_672),
        ("resnet50", 25_557_032),
    ],
)
def test_resnet_parameter_counts_match_reference(name, params):
    import keras

    m = getattr(models, name)()
    assert sum(int(np.prod(w.shape)) for w in m.trainable_weights) == params
    assert m.output_shape == (None, 1000)
    keras.backend.clear_session()


def test_resnet_options():
    m = models.resnet18(input_shape=(64, 64, 3), classes=10, width=16)
    assert m.input_shape == (None, 64, 64, 3) and m.output_shape == (None, 10)
    assert m.get_layer("stem_conv").filters == 16
    assert m.get_layer("stage4_block2_conv2").filters == 128


def test_resnet50_is_v1_5_stride_on_3x3():
    m = models.resnet50(input_shape=(64, 64, 3), classes=10)
    assert m.get_layer("stage2_block1_conv1").strides == (1, 1)
    assert m.get_layer("stage2_block1_conv2").strides == (2, 2)


def test_digits_reaches_95_percent_on_held_out(digits_ref, digits_test):
    _, y = digits_test
    assert len(y) == 450
    acc = float(np.mean(digits_ref.argmax(1) == y))
    assert acc >= 0.95, acc


def test_user_model_roundtrip(tmp_path):
    m = models.resnet18(input_shape=(32, 32, 3), classes=4, width=8)
    path = tmp_path / "mine.keras"
    m.save(path)
    name, loaded = models.load_model(str(path))
    assert name == "mine"
    x = np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32)
    np.testing.assert_allclose(loaded(x).numpy(), m(x).numpy(), rtol=1e-6, atol=1e-6)


def test_user_model_with_lambda_is_refused_by_safe_mode(tmp_path):
    import keras

    inp = keras.Input((8, 8, 3))
    out = keras.layers.Lambda(lambda t: t * 2)(inp)
    path = tmp_path / "lambda.keras"
    keras.Model(inp, out).save(path)
    with pytest.raises(InputError, match="holds a Lambda layer whose Python code would run on load; refused") as e:
        models.load_model(str(path))
    assert str(e.value).endswith("pass --trust-model only if you trust the file's source.")
    _, loaded = models.load_model(str(path), trust=True)  # the one documented way past it
    np.testing.assert_allclose(np.asarray(loaded(np.ones((1, 8, 8, 3), np.float32))), 2.0)


def test_corrupt_and_missing_models_are_input_errors(tmp_path):
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"not a zip")
    with pytest.raises(InputError, match="is not a .keras file"):
        models.load_model(str(bad))
    with pytest.raises(InputError, match="does not exist"):
        models.load_model(str(tmp_path / "missing.h5"))
    with pytest.raises(InputError, match="Unrecognized model"):
        models.load_model("resnet19")


def test_user_savedmodel_dir_loads(tmp_path):
    m = models.resnet18(input_shape=(32, 32, 3), classes=4, width=8)
    m.export(str(tmp_path / "sm"), format="tf_saved_model", verbose=False)
    with pytest.raises(InputError, match="is a SavedModel: loading one runs its graph"):
        models.load_model(str(tmp_path / "sm"))
    name, loaded = models.load_model(str(tmp_path / "sm"), trust=True)
    assert name == "sm" and loaded.input_shape == (None, 32, 32, 3)
    x = np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(loaded(x)), m(x).numpy(), rtol=1e-5, atol=1e-5)
    (tmp_path / "notsm").mkdir()
    with pytest.raises(InputError, match="not a SavedModel"):
        models.load_model(str(tmp_path / "notsm"))
