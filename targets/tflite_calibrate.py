"""TFLite calibration on all cores: activation ranges collected by running the float model on
LiteRT with XNNPACK, every activation made a model output, instead of TF's calibrator.

Why (measured on ResNet-50 @224, 200 samples, 2 cores; README "Export speed"): TF's calibrator
runs the builtin kernels single-threaded behind a logging op resolver (47 s); this runs in 14 s.
It is also more correct: TF's calibrator logs an op's inputs again after the op ran, so when the
memory planner lets an op (ADD) write over its input, that input's range becomes the union of
its own and the output's (tensorflow/tensorflow#127842: ResNet-50's residual-branch convs got a
max of 0.55 where their values never exceed 0.11). Every value here is read from a tensor that
nothing overwrote.

The seam: TFLiteConverter's own conversion, calibration-model preparation and MLIR quantizer
stay as they are; only the `Calibrator` object TF builds is ours for the duration of one
`convert()` (`tf_calibrator()` below). Models this cannot calibrate from outside (control flow
with several subgraphs, ops with intermediate tensors such as LSTM) use TF's own, as does
RESNET_DEPLOY_TFLITE_CALIBRATOR=tf.
"""
from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator

import numpy as np

ENV = "RESNET_DEPLOY_TFLITE_CALIBRATOR"
FLOAT32 = 0  # tflite TensorType.FLOAT32


def _loggable(model: Any) -> list[int] | None:
    """Indices of the float activations TF's calibrator records (the model input and every
    non-constant float op input/output), or None if this model needs TF's own calibrator."""
    if len(model.subgraphs) != 1:
        return None
    sg = model.subgraphs[0]
    used: set[int] = {int(i) for i in sg.inputs}
    for op in sg.operators:
        if op.intermediates is not None and len(op.intermediates):
            return None
        used |= {int(i) for i in op.inputs if i >= 0} | {int(i) for i in op.outputs}

    def is_activation(i: int) -> bool:
        t = sg.tensors[i]
        data = model.buffers[t.buffer].data if t.buffer < len(model.buffers) else None
        return t.type == FLOAT32 and not t.isVariable and (data is None or len(data) == 0)
    return sorted(i for i in used if is_activation(i))


def _all_outputs_model(model: Any, tensors: list[int]) -> bytes:
    """The same model with every tensor in `tensors` (but the inputs) as a model output."""
    from tensorflow.lite.tools import flatbuffer_utils

    sg = model.subgraphs[0]
    saved = (sg.outputs, model.signatureDefs)
    inputs = {int(i) for i in sg.inputs}
    sg.outputs = np.array([i for i in tensors if i not in inputs], dtype=np.int32)
    model.signatureDefs = []  # the signature would name the old outputs only
    try:
        return bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    finally:
        sg.outputs, model.signatureDefs = saved


def _sample(item: Any) -> np.ndarray:
    """One representative-dataset item (a list with the one input array) -> the array."""
    if not isinstance(item, list) or len(item) != 1:
        raise ValueError("the representative dataset must give a list with one array per sample")
    return np.asarray(item[0], dtype=np.float32)


def _min_max(view: Any) -> tuple[float, float]:
    """min and max of an output read in place (`Interpreter.tensor`): get_tensor's copies of
    every activation cost 30 of 113 ms per ResNet-50 sample. No reference outlives this call,
    as the interpreter requires before its next invoke."""
    v = view()
    return float(v.min()), float(v.max())


def collect_ranges(cls: type, model_bytes: bytes, tensors: list[int], samples: Iterator[Any],
                   threads: int | None = None) -> dict[int, tuple[float, float]]:
    """min and max of every tensor in `tensors` over all samples: the float model on the LiteRT
    Interpreter class `cls` with its default delegate (XNNPACK)."""
    from resnet_deploy._tf import captured_output

    with captured_output():
        interp = cls(model_content=model_bytes, num_threads=threads or os.cpu_count())
    (inp,) = interp.get_input_details()
    outs = [d["index"] for d in interp.get_output_details()]
    lo = {i: np.inf for i in tensors}
    hi = {i: -np.inf for i in tensors}
    shape = None
    for item in samples:
        x = _sample(item)
        if x.shape != shape:
            interp.resize_tensor_input(inp["index"], list(x.shape))
            interp.allocate_tensors()
            shape = x.shape
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        seen = [(inp["index"], (float(x.min()), float(x.max())))] + [(i, _min_max(interp.tensor(i))) for i in outs]
        for i, (a, b) in seen:
            lo[i], hi[i] = min(lo[i], a), max(hi[i], b)
    if shape is None:
        raise ValueError("the representative dataset gave no samples")
    return {i: (lo[i], hi[i]) for i in tensors}


def with_ranges(model: Any, ranges: dict[int, tuple[float, float]]) -> bytes:
    """The model with each tensor's min/max recorded as TF's calibrator records them."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    for i, (lo, hi) in ranges.items():
        q = schema.QuantizationParametersT()
        q.min, q.max = [np.float32(lo)], [np.float32(hi)]
        model.subgraphs[0].tensors[i].quantization = q
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def calibrate(cls: type, model_bytes: bytes, samples: Iterator[Any], threads: int | None = None) -> bytes | None:
    """The calibrated model (float model + min/max per activation), or None if this model needs
    TF's own calibrator."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(model_bytes))
    tensors = _loggable(model)
    if tensors is None:
        return None
    ranges = collect_ranges(cls, _all_outputs_model(model, tensors), tensors, samples, threads)
    return with_ranges(model, ranges)


def enabled() -> bool:
    return os.environ.get(ENV, "xnnpack").lower() != "tf"


def record(used: bool) -> dict:
    """The manifest's note of which calibrator produced the ranges, and why."""
    if used:
        return {"calibrator": "resnet-deploy (LiteRT XNNPACK float model, every activation an output)",
                "calibrator_why": "TF's calibrator is single-threaded and logs inputs after in-place ops overwrote "
                                  f"them (tensorflow/tensorflow#127842); {ENV}=tf for TF's own"}
    why = f"{ENV}=tf" if not enabled() else "the model has several subgraphs or ops with intermediate tensors"
    return {"calibrator": "tensorflow (TFLiteConverter's own)", "calibrator_why": why}


@contextlib.contextmanager
def tf_calibrator(cls: type, threads: int | None = None) -> Iterator[dict]:
    """While inside, TFLiteConverter calibrates with `calibrate` on the LiteRT Interpreter class
    `cls` (where it can). Yields a dict whose "used" says whether it did."""
    from tensorflow.lite.python import lite

    state = {"used": False}
    real = lite._calibrator.Calibrator  # noqa: SLF001 - the one object TF builds to calibrate

    class Calibrator:
        """TF's Calibrator interface; TF's own is only built if it is needed."""

        def __init__(self, model_content: bytes, *args: Any) -> None:
            self._args = (model_content, *args)

        def calibrate(self, dataset_gen: Any) -> bytes:
            out = calibrate(cls, self._args[0], dataset_gen(), threads) if enabled() else None
            state["used"] = out is not None
            return out if out is not None else real(*self._args).calibrate(dataset_gen)

    lite._calibrator.Calibrator = Calibrator  # noqa: SLF001
    try:
        yield state
    finally:
        lite._calibrator.Calibrator = real  # noqa: SLF001
