"""TFLiteConverter without the frozen function it makes and never uses.

TFLiteConverter.convert() (TF 2.21) freezes its concrete function with
convert_variables_to_constants_v2_as_graph, which returns the frozen GraphDef and also a frozen
ConcreteFunction built from it (the GraphDef imported into a wrapped function and pruned). The
converter converts the GraphDef; of the function it reads only the input and output tensors'
name, dtype and shape, yet keeps it alive through the MLIR conversion, the calibration and the
MLIR quantizer. On ResNet-50 @224 (AMD EPYC Zen 3) building it takes ~3.5 s and holding it
~300 MB plus ~400 MB of freed memory not given back, under every later peak. `lean(converter)`
freezes to the same GraphDef without the function (_tf.frozen_graph_def, TF's arguments) and
hands the converter light stand-ins for those tensors, taken from the traced function as TF's
_construct_concrete_function takes them. The converter runs the same calls on the same GraphDef:
the same file (tests). It steps aside when grappler is to run (it reads the frozen function) and
when RESNET_DEPLOY_TFLITE_LEAN=0; with a function library in the GraphDef the function is built
(TF then de-registers those functions) from the GraphDef made once, and let go."""

from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator

from resnet_deploy._tf import frozen_graph_def
from resnet_deploy.exporting.memory import release

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
    """While inside, `converter` (a TFLiteConverter on concrete functions) freezes to a GraphDef
    without building (and keeping) a frozen function."""
    if not enabled() or converter._grappler_config().graph_options.rewrite_options.optimizers:  # noqa: SLF001
        yield
        return
    freeze = converter._freeze_concrete_function  # noqa: SLF001 - the step whose by-product we skip

    def freeze_and_let_go() -> tuple:
        made = _freeze_graph_def(converter)
        if made is None:
            return freeze()  # TF's own error
        release()
        return *made, None

    converter._freeze_concrete_function = freeze_and_let_go  # noqa: SLF001
    try:
        yield
    finally:
        del converter._freeze_concrete_function  # noqa: SLF001 - the class's own again


def _freeze_graph_def(converter: Any) -> tuple | None:
    """TF's _freeze_concrete_function (lite.py) without its frozen ConcreteFunction: the frozen
    GraphDef, and stand-ins for the inputs (the traced function's inputs less the captured
    variables frozen into constants, no resources) and outputs that the function would have had.
    With a function library in the GraphDef the function is built from it, as TF does (that
    de-registers those functions). None for other than one function: TF's own raises its error."""
    from tensorflow.python.framework import convert_to_constants as freezing
    from tensorflow.python.framework import dtypes
    from tensorflow.python.util import object_identity

    funcs = converter._funcs  # noqa: SLF001
    if len(funcs) != 1:
        return None
    func = funcs[0]
    graph_def, converted = frozen_graph_def(func, aggressive_inlining=False)  # TF's lite.py arguments
    if graph_def.library.function:
        func = freezing._construct_concrete_function(func, graph_def, converted)  # noqa: SLF001
        frozen_in: Any = ()
    else:
        captures = func.graph.internal_captures
        frozen_in = object_identity.ObjectIdentitySet([captures[i] for i in converted])
    inputs = [_Tensor(t) for t in func.inputs if t not in frozen_in and t.dtype != dtypes.resource]
    return graph_def, inputs, [_Tensor(t) for t in func.outputs]
