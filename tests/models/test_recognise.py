"""A user's own keras.applications ResNet is recognised by structure and layer names, whatever it
is wrapped in; models that only resemble one are not."""

from __future__ import annotations

import pytest

from resnet_deploy.models.keras_apps import recognise


def _app(name: str, **kw):
    import keras

    return getattr(keras.applications, name)(weights=None, input_shape=(32, 32, 3), **kw)


@pytest.mark.parametrize(
    ("app", "preset"), [("ResNet50", "imagenet-caffe"), ("ResNet50V2", "symmetric"), ("ResNet101", "imagenet-caffe")]
)
def test_keras_applications_resnets_are_recognised(app, preset):
    found = recognise(_app(app, classes=7))
    assert found is not None and (found.app, found.preset) == (app, preset)


def test_a_base_model_inside_the_users_own_head_is_recognised():
    import keras

    base = _app("ResNet152V2", include_top=False)
    inp = keras.Input((32, 32, 3), name="photo")
    out = keras.layers.Dense(4, name="head")(keras.layers.GlobalAveragePooling2D()(base(inp)))
    found = recognise(keras.Model(inp, out))
    assert found is not None and found.app == "ResNet152V2" and "3-8-36-3" in found.evidence


def _lookalike(kernel: int, depths: tuple[int, ...]):
    """keras.applications' layer names on a stem of `kernel` and `depths` blocks per stage."""
    import keras

    inp = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(64, kernel, strides=2, name="conv1_conv")(inp)
    x = keras.layers.BatchNormalization(name="conv1_bn")(x)
    for stage, blocks in zip((2, 3, 4, 5), depths):
        for b in range(1, blocks + 1):
            x = keras.layers.Conv2D(8, 1, name=f"conv{stage}_block{b}_1_conv")(x)
    return keras.Model(inp, x)


def test_models_that_only_resemble_a_keras_resnet_are_not_placed():
    from resnet_deploy.models.digits import load_trained

    assert recognise(load_trained()) is None  # a ResNet of our own, other names
    assert recognise(_lookalike(7, (3, 4, 6, 3))) is not None  # the control: names and structure right
    assert recognise(_lookalike(3, (3, 4, 6, 3))) is None  # the right names on the wrong stem
    assert recognise(_lookalike(7, (3, 4, 5, 3))) is None  # a block cut out of stage 4
