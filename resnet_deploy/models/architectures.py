"""Keras ResNet architectures: the seed's residual block and network, ResNet-18/34/50 (v1.5).

Keras is imported inside the functions so that `import resnet_deploy` stays cheap.
"""

from __future__ import annotations

from typing import Any, Callable

from resnet_deploy.errors import InputError

# 64x64x3 in, 64x64x64 out: the network the project started from.
SEED_INPUT_SHAPE = (64, 64, 3)
SEED_FILTERS = 64


def keras_module() -> Any:
    """Keras, imported once with TensorFlow's start-up chatter captured."""
    from resnet_deploy._tf import quiet_tf

    quiet_tf()
    import keras

    return keras


def _named(name: str | None, suffix: str) -> str | None:
    return f"{name}_{suffix}" if name else None


def residual_block(x: Any, filters: int, kernel_size: int = 3, name: str | None = None, use_bias: bool = True) -> Any:
    """The seed's block: Conv-BN-ReLU-Conv-BN, Add with the block input, ReLU.

    With the seed's defaults (use_bias=True, as Keras' Conv2D) it is exactly the seed's block;
    `name` only names the layers (block1_conv1, ...). use_bias=False is the usual ResNet choice
    before BatchNormalization (the bias is redundant there); the digits model uses it.
    """
    layers = keras_module().layers
    shortcut = x
    x = layers.Conv2D(filters, kernel_size, padding="same", use_bias=use_bias, name=_named(name, "conv1"))(x)
    x = layers.BatchNormalization(name=_named(name, "bn1"))(x)
    x = layers.ReLU(name=_named(name, "relu1"))(x)
    x = layers.Conv2D(filters, kernel_size, padding="same", use_bias=use_bias, name=_named(name, "conv2"))(x)
    x = layers.BatchNormalization(name=_named(name, "bn2"))(x)
    x = layers.Add(name=_named(name, "add"))([shortcut, x])
    return layers.ReLU(name=_named(name, "out"))(x)


def seed(input_shape: tuple[int, int, int] = SEED_INPUT_SHAPE, filters: int = SEED_FILTERS) -> Any:
    """Exactly the seed network: Input(64, 64, 3) -> Conv2D(64, 3, same) -> two residual blocks
    (convolutions with Keras' default bias): 150,528 parameters."""
    keras = keras_module()
    inp = keras.Input(input_shape, name="input")
    x = keras.layers.Conv2D(filters, 3, padding="same", name="stem_conv")(inp)
    x = residual_block(x, filters, name="block1")
    x = residual_block(x, filters, name="block2")
    return keras.Model(inp, x, name="seed")


def seed_nobias(input_shape: tuple[int, int, int] = SEED_INPUT_SHAPE, filters: int = SEED_FILTERS) -> Any:
    """The seed network with bias-free block convolutions (BatchNormalization follows each):
    150,272 parameters, the same function class."""
    keras = keras_module()
    inp = keras.Input(input_shape, name="input")
    x = keras.layers.Conv2D(filters, 3, padding="same", name="stem_conv")(inp)
    x = residual_block(x, filters, name="block1", use_bias=False)
    x = residual_block(x, filters, name="block2", use_bias=False)
    return keras.Model(inp, x, name="seed_nobias")


def _shortcut(x: Any, out_filters: int, stride: int, name: str) -> Any:
    layers = keras_module().layers
    if stride == 1 and x.shape[-1] == out_filters:
        return x
    x = layers.Conv2D(out_filters, 1, strides=stride, use_bias=False, name=f"{name}_down_conv")(x)
    return layers.BatchNormalization(name=f"{name}_down_bn")(x)


def _basic_block(x: Any, filters: int, stride: int, name: str) -> Any:
    layers = keras_module().layers
    shortcut = _shortcut(x, filters, stride, name)
    y = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_conv1")(x)
    y = layers.BatchNormalization(name=f"{name}_bn1")(y)
    y = layers.ReLU(name=f"{name}_relu1")(y)
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv2")(y)
    y = layers.BatchNormalization(name=f"{name}_bn2")(y)
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.ReLU(name=f"{name}_out")(y)


def _bottleneck_block(x: Any, filters: int, stride: int, name: str) -> Any:
    """ResNet v1.5 bottleneck: the stride sits on the 3x3 conv, not the first 1x1."""
    layers = keras_module().layers
    shortcut = _shortcut(x, filters * 4, stride, name)
    y = x
    for i, (f, k, s) in enumerate(((filters, 1, 1), (filters, 3, stride), (filters * 4, 1, 1)), 1):
        y = layers.Conv2D(f, k, strides=s, padding="same", use_bias=False, name=f"{name}_conv{i}")(y)
        y = layers.BatchNormalization(name=f"{name}_bn{i}")(y)
        if i < 3:
            y = layers.ReLU(name=f"{name}_relu{i}")(y)
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.ReLU(name=f"{name}_out")(y)


def _resnet(
    name: str,
    block: Callable[..., Any],
    stages: tuple[int, ...],
    input_shape: tuple[int, int, int],
    classes: int,
    width: int,
) -> Any:
    keras = keras_module()
    layers = keras.layers
    if width < 1 or classes < 1:
        raise InputError(f"width={width} and classes={classes} must both be >= 1.")
    inp = keras.Input(input_shape, name="input")
    x = layers.Conv2D(width, 7, strides=2, padding="same", use_bias=False, name="stem_conv")(inp)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    for stage, blocks in enumerate(stages):
        for b in range(blocks):
            stride = 2 if (b == 0 and stage > 0) else 1
            x = block(x, width * (2**stage), stride, name=f"stage{stage + 1}_block{b + 1}")
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    out = layers.Dense(classes, name="logits")(x)
    return keras.Model(inp, out, name=name)


def resnet18(input_shape=(224, 224, 3), classes: int = 1000, width: int = 64) -> Any:
    """ResNet-18 (basic blocks, stages 2-2-2-2)."""
    return _resnet("resnet18", _basic_block, (2, 2, 2, 2), tuple(input_shape), classes, width)


def resnet34(input_shape=(224, 224, 3), classes: int = 1000, width: int = 64) -> Any:
    """ResNet-34 (basic blocks, stages 3-4-6-3)."""
    return _resnet("resnet34", _basic_block, (3, 4, 6, 3), tuple(input_shape), classes, width)


def resnet50(input_shape=(224, 224, 3), classes: int = 1000, width: int = 64) -> Any:
    """ResNet-50 v1.5 (bottleneck blocks, stages 3-4-6-3)."""
    return _resnet("resnet50", _bottleneck_block, (3, 4, 6, 3), tuple(input_shape), classes, width)
