"""The ResNets users have: keras.applications ResNet50/101/152 and ResNet50V2/101V2/152V2, as
built-in models `keras:ResNet50` ... Weights come only from a local file (`--weights PATH`, never
downloaded); without one the weights are random (seeded) and every report says "untrained:
speed only". Each knows its preprocessing: caffe for V1, symmetric for V2."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from resnet_deploy.errors import InputError, first_line

PREFIX = "keras:"
# name -> preprocessing preset it was trained with
RESNETS = {
    "ResNet50": "imagenet-caffe",
    "ResNet101": "imagenet-caffe",
    "ResNet152": "imagenet-caffe",
    "ResNet50V2": "symmetric",
    "ResNet101V2": "symmetric",
    "ResNet152V2": "symmetric",
}
MIN_INPUT_SIZE = 32  # keras.applications refuses smaller inputs


def check_options(name: str, input_size: int | None, weights: Path | None) -> None:
    """What can be refused before Keras loads: an input too small, a weights file that is not there."""
    size = input_size or 224
    if size < MIN_INPUT_SIZE:
        raise InputError(f"--input-size {size}: {name[len(PREFIX) :]} needs at least {MIN_INPUT_SIZE}.")
    if weights is not None and not Path(weights).is_file():
        raise InputError(
            f"--weights {str(weights)!r} does not exist; pass a local .weights.h5/.h5 file (nothing is downloaded)."
        )


def build(name: str, input_size: int | None = None, classes: int | None = None, weights: Path | None = None) -> Any:
    """keras.applications.<name> with a square input, the class count, and local weights (or none)."""
    from resnet_deploy.models.architectures import keras_module

    keras = keras_module()
    app, size = name[len(PREFIX) :], input_size or 224
    check_options(name, input_size, weights)
    try:
        return getattr(keras.applications, app)(
            weights=str(weights) if weights else None, input_shape=(size, size, 3), classes=classes or 1000
        )
    except (ValueError, OSError) as e:
        raise InputError(
            f"--weights {str(weights)!r} do not fit {app} with {classes or 1000} classes at "
            f"{size}x{size} ({first_line(e, 200)})."
        ) from e
