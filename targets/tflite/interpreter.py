"""The LiteRT interpreter this machine has, found in the device's order (ai-edge-litert,
tflite-runtime, then TensorFlow's own)."""

from __future__ import annotations

from typing import Any

from resnet_deploy.errors import BackendUnavailable
from resnet_deploy.portable.runtimes import tflite_interpreter_class


def load_interpreter_class() -> tuple[Any, str]:
    """The LiteRT Interpreter class and where it came from (the device's order)."""

    def quiet_tensorflow():
        from resnet_deploy._tf import quiet_tf

        quiet_tf()
        import tensorflow as tf

        return tf

    try:
        cls, source, _ = tflite_interpreter_class(quiet_tensorflow)
    except ImportError:
        raise BackendUnavailable("No TFLite interpreter found; install ai-edge-litert (or tflite-runtime).") from None
    return cls, source
