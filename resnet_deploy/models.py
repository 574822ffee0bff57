"""Keras ResNet definitions: the seed network, ResNet-18/34/50, the trained `digits` model,
and loading a user's own model (Keras safe_mode on).

Keras is imported inside the functions so that `import resnet_deploy` stays cheap.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from resnet_deploy.errors import InputError

# 64x64x3 in, 64x64x64 out: the network the project started from.
SEED_INPUT_SHAPE = (64, 64, 3)
SEED_FILTERS = 64


def _keras():
    from resnet_deploy._tf import quiet_tf

    quiet_tf()
    import keras

    return keras


def residual_block(x: Any, filters: int, name: str) -> Any:
    """The seed's block: Conv-BN-ReLU-Conv-BN, Add with the block input, ReLU."""
    layers = _keras().layers
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv1")(x)
    y = layers.BatchNormalization(name=f"{name}_bn1")(y)
    y = layers.ReLU(name=f"{name}_relu1")(y)
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv2")(y)
    y = layers.BatchNormalization(name=f"{name}_bn2")(y)
    y = layers.Add(name=f"{name}_add")([x, y])
    return layers.ReLU(name=f"{name}_out")(y)


def seed(input_shape: tuple[int, int, int] = SEED_INPUT_SHAPE, filters: int = SEED_FILTERS) -> Any:
    """Exactly the seed network: Conv2D(64, 3x3, same), then two residual blocks."""
    keras = _keras()
    inp = keras.Input(input_shape, name="input")
    x = keras.layers.Conv2D(filters, 3, padding="same", name="stem_conv")(inp)
    x = residual_block(x, filters, "block1")
    x = residual_block(x, filters, "block2")
    return keras.Model(inp, x, name="seed")


def _basic_block(x: Any, filters: int, stride: int, name: str) -> Any:
    layers = _keras().layers
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False, name=f"{name}_down_conv")(x)
        shortcut = layers.BatchNormalization(name=f"{name}_down_bn")(shortcut)
    y = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_conv1")(x)
    y = layers.BatchNormalization(name=f"{name}_bn1")(y)
    y = layers.ReLU(name=f"{name}_relu1")(y)
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv2")(y)
    y = layers.BatchNormalization(name=f"{name}_bn2")(y)
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.ReLU(name=f"{name}_out")(y)


def _bottleneck_block(x: Any, filters: int, stride: int, name: str) -> Any:
    """ResNet v1.5 bottleneck: the stride sits on the 3x3 conv, not the first 1x1."""
    layers = _keras().layers
    out_filters = filters * 4
    shortcut = x
    if stride != 1 or x.shape[-1] != out_filters:
        shortcut = layers.Conv2D(out_filters, 1, strides=stride, use_bias=False, name=f"{name}_down_conv")(x)
        shortcut = layers.BatchNormalization(name=f"{name}_down_bn")(shortcut)
    y = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_conv1")(x)
    y = layers.BatchNormalization(name=f"{name}_bn1")(y)
    y = layers.ReLU(name=f"{name}_relu1")(y)
    y = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_conv2")(y)
    y = layers.BatchNormalization(name=f"{name}_bn2")(y)
    y = layers.ReLU(name=f"{name}_relu2")(y)
    y = layers.Conv2D(out_filters, 1, use_bias=False, name=f"{name}_conv3")(y)
    y = layers.BatchNormalization(name=f"{name}_bn3")(y)
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
    keras = _keras()
    layers = keras.layers
    if width < 1 or classes < 1:
        raise InputError(f"width={width} and classes={classes} must both be >= 1.")
    inp = keras.Input(input_shape, name="input")
    x = layers.Conv2D(width, 7, strides=2, padding="same", use_bias=False, name="stem_conv")(inp)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    for stage, blocks in enumerate(stages):
        filters = width * (2**stage)
        for b in range(blocks):
            stride = 2 if (b == 0 and stage > 0) else 1
            x = block(x, filters, stride, name=f"stage{stage + 1}_block{b + 1}")
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


def digits() -> Any:
    """The trained digits classifier (see resnet_deploy/digits.py), weights shipped in the package."""
    from resnet_deploy import digits as _digits

    return _digits.load_trained()


@dataclass(frozen=True)
class ModelSpec:
    """A built-in model: how to build it and what it is."""

    name: str
    build: Callable[..., Any]
    description: str
    trained: bool = False


BUILTIN_MODELS: dict[str, ModelSpec] = {
    "seed": ModelSpec("seed", seed, "the seed network: 64x64x3 -> 64x64x64, two residual blocks"),
    "resnet18": ModelSpec("resnet18", resnet18, "ResNet-18, basic blocks (random init)"),
    "resnet34": ModelSpec("resnet34", resnet34, "ResNet-34, basic blocks (random init)"),
    "resnet50": ModelSpec("resnet50", resnet50, "ResNet-50 v1.5, bottleneck blocks (random init)"),
    "digits": ModelSpec("digits", digits, "small ResNet trained on scikit-learn digits (32x32x3, 10 classes)", True),
}

_USER_MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")


def load_model(name_or_path: str | Path, input_size: int | None = None, classes: int | None = None,
               width: int | None = None) -> tuple[str, Any]:
    """Return (model_name, keras.Model) for a built-in name or a user's model file.

    A user's model (`.keras`, `.h5` or a SavedModel directory) loads with Keras safe_mode on,
    so a model file cannot run arbitrary Python (lambda layers) while loading.
    """
    key = str(name_or_path)
    if key in BUILTIN_MODELS:
        spec = BUILTIN_MODELS[key]
        kwargs: dict[str, Any] = {}
        if key.startswith("resnet"):
            if input_size is not None:
                kwargs["input_shape"] = (input_size, input_size, 3)
            if classes is not None:
                kwargs["classes"] = classes
            if width is not None:
                kwargs["width"] = width
        elif any(v is not None for v in (input_size, classes, width)):
            raise InputError(f"Model {key!r} has a fixed architecture; --input-size/--classes/--width apply to resnet18/34/50 only.")
        return key, spec.build(**kwargs)
    path = Path(key).expanduser()
    if not path.exists():
        looks_like_path = path.suffix or "/" in key or "\\" in key
        if looks_like_path:
            raise InputError(f"Model file {str(path)!r} does not exist; pass an existing .keras/.h5 file or SavedModel directory.")
        raise InputError(f"Unrecognized model={key!r}. Supported: {', '.join(BUILTIN_MODELS)}, or a path to a .keras/.h5 file or SavedModel directory.")
    return path.stem or path.name, _load_user_model(path)


def _load_user_model(path: Path) -> Any:
    keras = _keras()
    try:
        if path.is_dir():
            if not (path / "saved_model.pb").exists():
                raise InputError(f"Directory {str(path)!r} is not a SavedModel (no saved_model.pb); pass a .keras/.h5 file or a SavedModel directory.")
            # Keras 3 reads SavedModels only for inference, through TFSMLayer.
            import tensorflow as tf

            loaded = tf.saved_model.load(str(path))
            sig = loaded.signatures.get("serving_default")
            if sig is None:
                raise InputError(f"SavedModel {str(path)!r} has no 'serving_default' signature; re-export it with one.")
            (in_name, in_spec), = sig.structured_input_signature[1].items()
            inp = keras.Input(tuple(in_spec.shape[1:]), name="input")
            out = keras.layers.TFSMLayer(str(path), call_endpoint="serving_default")(inp)
            if isinstance(out, dict):
                if len(out) != 1:
                    raise InputError(f"SavedModel {str(path)!r} has {len(out)} outputs; only single-output models are supported.")
                out = next(iter(out.values()))
            return keras.Model(inp, out, name=path.name)
        if path.suffix.lower() not in _USER_MODEL_SUFFIXES:
            raise InputError(f"Model file {str(path)!r} has an unsupported suffix; use .keras, .h5 or a SavedModel directory.")
        return keras.models.load_model(path, compile=False, safe_mode=True)
    except InputError:
        raise
    except Exception as e:  # noqa: BLE001 - any loader failure on user data is a user error
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"Could not load model {str(path)!r} ({first[:200]}); is it a valid Keras model file?") from e
