"""TFLiteConverter without its spare copy of the model during conversion.

TFLiteConverter.convert() (TF 2.21) keeps the frozen function it made (a TF graph holding every
weight) alive until the whole conversion returns: through the MLIR conversion, the calibration
and the MLIR quantizer, although after freezing it only reads the input and output tensors' name,
dtype and shape. On ResNet-50 @224 (AMD EPYC Zen 3) that is ~300 MB held and ~400 MB of freed
memory not given back, under every later peak. `lean(converter)` hands the converter light
stand-ins for those tensors and lets the frozen function go (and trims the heap) right after
freezing. The converter runs the same calls on the same GraphDef: the same file (tests). It
steps aside when grappler is to run (it reads the frozen graph) and when
RESNET_DEPLOY_TFLITE_LEAN=0."""
from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator

from resnet_deploy.memory import release

ENV = "RESNET_DEPLOY_TFLITE_LEAN"  # "0": TF's own (the escape hatch)


class _Tensor:
    """What the converter reads of an input or output tensor after freezing (convert_graphdef,
    _validate_inputs): its name, dtype and shape, and set_shape for a None batch dimension."""

    def __init__(self, tensor: Any) -> None:
        self.name, self.dtype, self.shape = tensor.name, tensor.dtype, tensor.shape

    def set_shape(self, shape: Any) -> None:
        import tensorflow as tf

        self.shape = tf.TensorShape(shape)


def enabled() -> bool:
    return os.environ.get(ENV, "1") != "0"


@contextlib.contextmanager
def lean(converter: Any) -> Iterator[None]:
    """While inside, `converter` (a TFLiteConverter on concrete functions) lets its frozen
    function go once its GraphDef is made."""
    if not enabled() or converter._grappler_config().graph_options.rewrite_options.optimizers:  # noqa: SLF001
        yield
        return
    freeze = converter._freeze_concrete_function  # noqa: SLF001 - the step whose result is kept

    def freeze_and_let_go() -> tuple:
        graph_def, inputs, outputs, frozen = freeze()
        light = [_Tensor(t) for t in inputs], [_Tensor(t) for t in outputs]
        del frozen, inputs, outputs
        release()
        return graph_def, *light, None

    converter._freeze_concrete_function = freeze_and_let_go  # noqa: SLF001
    try:
        yield
    finally:
        del converter._freeze_concrete_function  # noqa: SLF001 - the class's own again
