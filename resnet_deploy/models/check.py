"""What a model must be for every command and precision, checked once, when it is loaded.

resnet-deploy compiles image models: one input of fixed size (height, width, channels), one
output that is class scores (batch, classes) or a feature map (batch, H, W, C). Anything else
used to export "successfully" at fp32 with a manifest that was wrong (a dynamic input recorded
as [1, 1, 1, 3], a vector declared NHWC, outputs in reverse order) and crash a later command;
now it stops at load with one line saying what the model has and what to do."""

from __future__ import annotations

import re

from typing import Any

from resnet_deploy.errors import InputError


def _shape(t: Any) -> tuple:
    return tuple(getattr(t, "shape", ()))


# TensorFlow's name-scope rule (tensorflow/python/framework/ops.py): a Keras layer's name becomes a
# scope when TFLiteConverter, tf2onnx or OpenVINO trace the model; any other character fails deep in
# the trace with "in user code:" and nothing that names the layer.
TRACEABLE_NAME = re.compile(r"^[A-Za-z0-9_.\\/>-]*$")


def check_model(model: Any, name: str) -> None:
    """Raise InputError unless `model` has one fixed-size image input and one supported output."""
    ins, outs = list(getattr(model, "inputs", None) or []), list(getattr(model, "outputs", None) or [])
    if len(ins) != 1:
        raise InputError(
            f"model {name!r} has {len(ins)} inputs; resnet-deploy compiles single-input image models: "
            "export a model that takes one image tensor."
        )
    if len(outs) != 1:
        raise InputError(
            f"model {name!r} has {len(outs)} outputs; resnet-deploy compiles single-output models: "
            "wrap it in a keras.Model that returns only the class scores."
        )
    bad = next((layer.name for layer in model.layers if not TRACEABLE_NAME.match(layer.name)), None)
    if bad is not None:
        raise InputError(
            f"model {name!r} has a layer named {bad!r}, which TensorFlow cannot trace (every converter here "
            "does): rename it with letters, digits and _ . > - only, then save the model again."
        )
    shape, out = _shape(ins[0]), _shape(outs[0])
    if len(shape) != 4:
        raise InputError(
            f"model {name!r} takes inputs of shape {shape[1:]}, not an image (height, width, channels); "
            "resnet-deploy compiles image models."
        )
    if any(d is None for d in shape[1:]):
        raise InputError(
            f"model {name!r} has a dynamic input size {shape[1:]}; re-save it with a fixed one, e.g. "
            "keras.Input((224, 224, 3)), so every backend compiles the same shape."
        )
    if len(out) not in (2, 4) or any(d is None for d in out[1:]):
        raise InputError(
            f"model {name!r} outputs shape {out[1:]}; resnet-deploy supports class scores (classes,) "
            "or a fixed-size feature map (height, width, channels)."
        )
