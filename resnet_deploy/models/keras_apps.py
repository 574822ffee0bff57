"""The ResNets users have: keras.applications ResNet50/101/152 and ResNet50V2/101V2/152V2, as
built-in models `keras:ResNet50` ... Weights come only from a local file (`--weights PATH`, never
downloaded); without one the weights are random (seeded) and every report says "untrained:
speed only". Each knows its preprocessing: caffe for V1, symmetric for V2."""

from __future__ import annotations

import re
from dataclasses import dataclass
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


# residual blocks per stage (conv2..conv5) -> keras.applications name, V1 and V2 alike
DEPTHS: dict[tuple[int, ...], str] = {(3, 4, 6, 3): "ResNet50", (3, 4, 23, 3): "ResNet101", (3, 8, 36, 3): "ResNet152"}
_BLOCK = re.compile(r"^conv([2-5])_block(\d+)_")


@dataclass(frozen=True)
class Recognised:
    """A keras.applications ResNet found inside a user's model, and the evidence."""

    app: str
    preset: str
    evidence: str

    def why(self, model_name: str) -> str:
        return (
            f"{model_name} is built from keras.applications {self.app} ({self.evidence}), "
            f"trained with {self.preset} preprocessing"
        )


def _layers(model: Any) -> list[Any]:
    """Every layer, nested models (a base model inside the user's head) walked in order."""
    found = []
    for layer in getattr(model, "layers", []):
        found.append(layer)
        found.extend(_layers(layer))
    return found


def recognise(model: Any) -> Recognised | None:
    """keras.applications ResNet V1/V2 by structure and layer names: a 7x7/2 64-filter `conv1_conv`
    stem, residual blocks `convS_blockB_*` whose count per stage is one of ResNet50/101/152's, and,
    for V2, pre-activation (`*_preact_bn`, `post_bn`) instead of `conv1_bn`. None when it is not one."""
    layers = _layers(model)
    by_name = {layer.name: layer for layer in layers}
    stem = by_name.get("conv1_conv")
    if stem is None or tuple(getattr(stem, "kernel_size", ())) != (7, 7) or getattr(stem, "filters", 0) != 64:
        return None
    if tuple(getattr(stem, "strides", ())) != (2, 2):
        return None
    blocks: dict[int, set[int]] = {}
    for name in by_name:
        m = _BLOCK.match(name)
        if m:
            blocks.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
    depths = tuple(len(blocks.get(s, ())) for s in (2, 3, 4, 5))
    complete = all(blocks.get(s) == set(range(1, d + 1)) for s, d in zip((2, 3, 4, 5), depths))
    app = DEPTHS.get(depths) if complete else None
    if app is None:
        return None
    v2 = "post_bn" in by_name and any(n.endswith("_preact_bn") for n in by_name)
    v1 = "conv1_bn" in by_name and not v2
    if not (v1 or v2):
        return None
    app += "V2" if v2 else ""
    evidence = f"7x7/2 conv1_conv stem, {'-'.join(map(str, depths))} residual blocks"
    return Recognised(app, RESNETS[app], evidence + (", pre-activation" if v2 else ""))
