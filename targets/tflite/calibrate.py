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
RESNET_DEPLOY_TFLITE_CALIBRATOR=tf. When the same export measured the ranges already (ONNX
Runtime's pass, calibration/ranges.py), the float model runs on the first samples only, to find
each tensor among the measured ones; it falls back to the whole pass if any is missing.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from typing import Any, Iterator

import numpy as np

from resnet_deploy.calibration.ranges import ENV as RANGES_ENV, PROBES

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


class _AllOutputs:
    """The all-outputs model on the LiteRT Interpreter class `cls` with its default delegate
    (XNNPACK), on `threads` threads (None: all cores)."""

    def __init__(self, cls: type, model_bytes: bytes, threads: int | None) -> None:
        from resnet_deploy._tf import captured_output

        with captured_output():
            self.interp = cls(model_content=model_bytes, num_threads=threads or os.cpu_count())
        (inp,) = self.interp.get_input_details()
        self.input = inp["index"]
        self.outputs = [d["index"] for d in self.interp.get_output_details()]
        self._shape: tuple | None = None

    def run(self, samples: Iterator[Any]) -> Iterator[tuple[np.ndarray, list[tuple[int, Any]]]]:
        """Each sample and (tensor index, in-place view) of every output, valid until the next sample."""
        for item in samples:
            x = _sample(item)
            if x.shape != self._shape:
                self.interp.resize_tensor_input(self.input, list(x.shape))
                self.interp.allocate_tensors()
                self._shape = x.shape
            self.interp.set_tensor(self.input, x)
            self.interp.invoke()
            yield x, [(i, self.interp.tensor(i)) for i in self.outputs]


def collect_ranges(model: _AllOutputs, tensors: list[int], samples: Iterator[Any]) -> dict[int, tuple[float, float]]:
    """min and max of every tensor in `tensors` over all samples."""
    lo = {i: np.inf for i in tensors}
    hi = {i: -np.inf for i in tensors}
    count = 0
    for x, views in model.run(samples):
        seen = [(model.input, (float(x.min()), float(x.max())))] + [(i, _min_max(v)) for i, v in views]
        for i, (a, b) in seen:
            lo[i], hi[i] = min(lo[i], a), max(hi[i], b)
        count += 1
    if not count:
        raise ValueError("the representative dataset gave no samples")
    return {i: (lo[i], hi[i]) for i in tensors}


def _shared(model: _AllOutputs, names: dict[int, str], probes: list, measured: Any) -> tuple[dict | None, str]:
    """Ranges for every tensor from ranges another backend measured on this calibration set
    (calibration/ranges.py), matched on the probe samples; or None and why not."""
    from resnet_deploy.calibration.ranges import fingerprint, match, probe_digest

    if len(probes) < PROBES or probe_digest(np.concatenate([_sample(p) for p in probes])) != measured.probe_sha:
        return None, "the first calibration samples are not the ones the ranges were measured with"
    prints: dict[str, list] = {}
    for x, views in model.run(iter(probes)):
        prints.setdefault(names[model.input], []).append(fingerprint(x))
        for i, v in views:
            prints.setdefault(names[i], []).append(fingerprint(v()))
    ranges, how = match(measured, {n: np.array(fp) for n, fp in prints.items()})
    index = {n: i for i, n in names.items()}
    return (None if ranges is None else {index[n]: r for n, r in ranges.items()}), how


def with_ranges(model: Any, ranges: dict[int, tuple[float, float]]) -> bytes:
    """The model with each tensor's min/max recorded as TF's calibrator records them."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    for i, (lo, hi) in ranges.items():
        q = schema.QuantizationParametersT()
        q.min, q.max = [np.float32(lo)], [np.float32(hi)]
        model.subgraphs[0].tensors[i].quantization = q
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def calibrate(
    cls: type, model_bytes: bytes, samples: Iterator[Any], threads: int | None = None, measured: Any = None
) -> tuple[bytes | None, dict]:
    """The calibrated model (float model + min/max per activation), or None if this model needs
    TF's own calibrator; and a note: "shared" = whose ranges were taken from `measured` (a
    resnet_deploy.calibration.ranges.MeasuredRanges, or why there are none), "how" = how they matched, or why not."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(model_bytes))
    tensors = _loggable(model)
    if tensors is None:
        return None, {"shared": None, "how": None}
    runner = _AllOutputs(cls, _all_outputs_model(model, tensors), threads)
    if measured is None or isinstance(measured, str):
        return with_ranges(model, collect_ranges(runner, tensors, samples)), {"shared": None, "how": measured}
    probes = list(itertools.islice(samples, PROBES))
    names = {i: model.subgraphs[0].tensors[i].name.decode() for i in tensors}
    ranges, how = _shared(runner, names, probes, measured)
    if ranges is not None:
        return with_ranges(model, ranges), {"shared": measured.source, "how": how}
    ranges = collect_ranges(runner, tensors, itertools.chain(probes, samples))
    return with_ranges(model, ranges), {"shared": None, "how": how}


def enabled() -> bool:
    return os.environ.get(ENV, "xnnpack").lower() != "tf"


def record(state: dict) -> dict:
    """The manifest's note of which calibrator produced the ranges, and why."""
    if state["shared"]:
        return {
            "calibrator": f"shared: {state['shared']}",
            "calibrator_why": "one pass over the calibration set for two backends: the same statistic (float32 "
            "min/max of every activation over every sample), each TFLite tensor found in the "
            f"other graph by its values ({state['how']}); {RANGES_ENV}=0 to calibrate here",
        }
    out = {"calibrator": "tensorflow (TFLiteConverter's own)", "calibrator_why": f"{ENV}=tf"}
    if state["used"]:
        out = {
            "calibrator": "resnet-deploy (LiteRT XNNPACK float model, every activation an output)",
            "calibrator_why": "TF's calibrator is single-threaded and logs inputs after in-place ops overwrote "
            f"them (tensorflow/tensorflow#127842); {ENV}=tf for TF's own",
        }
    elif enabled():
        out["calibrator_why"] = "the model has several subgraphs or ops with intermediate tensors"
    if state["how"]:
        out["ranges_not_shared"] = state["how"]
    return out


@contextlib.contextmanager
def tf_calibrator(cls: type, threads: int | None = None, measured: Any = None) -> Iterator[dict]:
    """While inside, TFLiteConverter calibrates with `calibrate` on the LiteRT Interpreter class
    `cls` (where it can), taking the ranges in `measured` (a resnet_deploy.calibration.ranges.MeasuredRanges,
    or why there are none) if they match. Yields the state record() reads: "used" (ours ran),
    "shared" (whose ranges were taken, if they were), "how" (how they matched, or why not)."""
    from tensorflow.lite.python import lite

    state: dict = {"used": False, "shared": None, "how": None}
    real = lite._calibrator.Calibrator  # noqa: SLF001 - the one object TF builds to calibrate

    class Calibrator:
        """TF's Calibrator interface; TF's own is only built if it is needed."""

        def __init__(self, model_content: bytes, *args: Any) -> None:
            self._args = (model_content, *args)

        def calibrate(self, dataset_gen: Any) -> bytes:
            out, note = (
                calibrate(cls, self._args[0], dataset_gen(), threads, measured)
                if enabled()
                else (None, {"shared": None, "how": None})
            )
            state.update(used=out is not None, **note)
            return out if out is not None else real(*self._args).calibrate(dataset_gen)

    lite._calibrator.Calibrator = Calibrator  # noqa: SLF001
    try:
        yield state
    finally:
        lite._calibrator.Calibrator = real  # noqa: SLF001
