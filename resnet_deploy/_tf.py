"""Quiet TensorFlow's start-up chatter, capture what converters print, and the one traced
inference function the TF-based converters start from."""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
from typing import Any, Iterator, cast

INPUT_NAME = "input"  # the input tensor's name in every artifact converted from a traced Keras model


def quiet_tf() -> None:
    """Import TensorFlow and Keras once, with their start-up chatter captured.

    TF 2.21 logs through absl before any log level applies (oneDNN and CPU-feature notices on
    every start); those lines would bury our one-line progress and error output.
    """
    if "tensorflow" in sys.modules and "keras" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    from resnet_deploy.exporting.memory import collector_paused

    with captured_output(), collector_paused():
        import keras  # noqa: F401
        import tensorflow  # noqa: F401


@contextlib.contextmanager
def captured_output() -> Iterator[list[str]]:
    """Redirect fds 1 and 2 (C++ logs and converter prints included) to a temp file.

    Converters dump pages of graph signatures and MLIR chatter; users want one progress
    line. When the block ends (normally or by an exception) the captured text is appended to
    the yielded list: Target.export quotes its most telling line in the ExportError.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    log: list[str] = []
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 1)
        os.dup2(tmp.fileno(), 2)
        py_log = io.StringIO()  # Python-level prints, wherever sys.stdout points (pytest, IDEs)
        try:
            with contextlib.redirect_stdout(py_log), contextlib.redirect_stderr(py_log):
                yield log
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            tmp.seek(0)
            log.append(py_log.getvalue() + tmp.read().decode(errors="replace"))


_TRACED: Any = None  # model -> (tf.function, signature); a weakref.WeakKeyDictionary made on first use


def inference_function(model: Any) -> tuple[Any, list]:
    """The model's inference call (training=False) as a tf.function with an explicit input
    signature (any batch, the model's own image size, named INPUT_NAME), and that signature.
    Keras 3 models break tf2onnx.convert.from_keras without one. One per model: tf2onnx and the
    TFLite converter of one export share its trace (ResNet-50 @224: ~1 s per trace). The function
    holds the model weakly, so the cache entry goes with the model."""
    global _TRACED
    import weakref

    quiet_tf()
    import tensorflow as tf

    if _TRACED is None:
        _TRACED = weakref.WeakKeyDictionary()
    if model not in _TRACED:
        spec = [tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name=INPUT_NAME)]
        ref = weakref.ref(model)
        _TRACED[model] = tf.function(lambda x: cast(Any, ref())(x, training=False), input_signature=spec), spec
    return _TRACED[model]


def frozen_graph_def(func: Any, aggressive_inlining: bool) -> tuple[Any, list[int]]:
    """TF's convert_variables_to_constants_v2 (lower_control_flow=False) up to its GraphDef: its
    first two calls, without the third, which builds a frozen ConcreteFunction from the GraphDef
    (~3.5 s on ResNet-50 @224; the two calls 0.8 s) that our converters only read the GraphDef or
    tensor names of. Returns the frozen GraphDef and the indices of the function's captured
    inputs that were frozen into constants."""
    from tensorflow.python.framework import convert_to_constants as freezing

    data = freezing._FunctionConverterDataInEager(
        func=func,
        lower_control_flow=False,  # noqa: SLF001
        aggressive_inlining=aggressive_inlining,
    )
    return freezing._replace_variables_by_constants(converter_data=data)  # noqa: SLF001
