"""ONNX Runtime calibration in an optimised session.

ORT's calibrators run their augmented model (a ReduceMin/ReduceMax pair after every tensor to
calibrate) in a session at ORT_DISABLE_ALL, without the CPU's layout and fusion transformations.
At ORT_ENABLE_ALL the same augmented model runs ResNet-50 @224 at 64 instead of 81 ms per sample
here (2 cores, AMD EPYC Zen 3; `python benchmarks/export_speed.py`). The tensors, the reductions
and the merging of ranges stay ORT's own; only the session it builds is optimised, for the
duration of one quantize_static call. The values differ by float rounding only (tested:
every range within 1e-4 of its width). RESNET_DEPLOY_ORT_CALIBRATION=ort keeps ORT's own session.

In the same session, a Relu's output is not reduced when its input is (MinMax, asymmetric, no
moving average): its range is derived from the input's after the pass, exactly, since Relu is
monotone (min relu(x) = max(min x, 0), likewise for max, over each sample and over all of them).
ResNet-50: 49 of 124 calibrated tensors, the augmented model 114 -> 80-100 ms per sample.

The same pass can serve a second backend (calibration/ranges.py): probe_prints fingerprints every
tensor on the first samples, ORT writes its ranges to its calibration cache, measured_ranges
reads them back (checked: per-tensor, finite) with the fingerprints of those tensors.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Iterator

import numpy as np

ENV = "RESNET_DEPLOY_ORT_CALIBRATION"


def enabled() -> bool:
    return os.environ.get(ENV, "optimized").lower() != "ort"


def record() -> dict:
    """The manifest's note of the calibration session, and why."""
    if enabled():
        return {
            "calibration_session": "ORT_ENABLE_ALL",
            "calibration_session_why": f"ORT's calibrator session runs unoptimised (ORT_DISABLE_ALL), and reduces each Relu output "
            f"that min/max of its input give exactly; {ENV}=ort for ORT's own",
        }
    return {"calibration_session": "ORT_DISABLE_ALL (ORT's own)", "calibration_session_why": f"{ENV}=ort"}


@contextlib.contextmanager
def optimized_session(threads: int | None = None) -> Iterator[None]:
    """While inside, ORT's calibrators build their inference session at ORT_ENABLE_ALL; with
    `threads`, on that many intra-op threads that sleep rather than spin when idle (a worker
    process beside another export: spinning threads take the other export's core)."""
    if not enabled():
        yield
        return
    import onnxruntime as ort
    from onnxruntime.quantization import calibrate

    real = calibrate.CalibraterBase.create_inference_session

    def create_inference_session(self: Any) -> None:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.infer_session = ort.InferenceSession(
            self.augmented_model_path, sess_options=options, providers=self.execution_providers
        )

    calibrate.CalibraterBase.create_inference_session = create_inference_session
    try:
        with _relu_ranges_derived(calibrate.MinMaxCalibrater):
            yield
    finally:
        calibrate.CalibraterBase.create_inference_session = real


@contextlib.contextmanager
def _relu_ranges_derived(minmax: Any) -> Iterator[None]:
    """While inside, ORT's MinMax calibrator leaves out a Relu output whose input it calibrates,
    and after each compute_data puts its range back: (max(lo, 0), max(hi, 0)) of the input's."""
    from onnxruntime.quantization.calibrate import TensorData

    select, compute = minmax.select_tensors_to_calibrate, minmax.compute_data

    def select_without_relus(self: Any, model: Any) -> tuple:
        tensors, infos = select(self, model)
        self._rd_relus = {} if self.symmetric or self.moving_average else _relu_outputs(model, tensors)
        return tensors - set(self._rd_relus), infos

    def compute_with_relus(self: Any) -> Any:
        relus = getattr(self, "_rd_relus", {})
        for out in relus if self.calibrate_tensors_range is not None else ():
            self.calibrate_tensors_range.data.pop(out, None)  # merged again from the inputs, below
        ranges = compute(self)
        for out, src in relus.items() if ranges is not None else ():
            lo, hi = ranges[src].range_value
            ranges.data[out] = TensorData(
                lowest=np.maximum(lo, np.zeros_like(lo)), highest=np.maximum(hi, np.zeros_like(hi))
            )
        return ranges

    own = dict(vars(minmax))  # select_tensors_to_calibrate is CalibraterBase's: deleted again, not copied down
    minmax.select_tensors_to_calibrate, minmax.compute_data = select_without_relus, compute_with_relus
    try:
        yield
    finally:
        for name in ("select_tensors_to_calibrate", "compute_data"):
            if name in own:
                setattr(minmax, name, own[name])
            else:
                delattr(minmax, name)


def _relu_outputs(model: Any, tensors: set[str]) -> dict[str, str]:
    """Relu output -> its input, for each Relu whose input and output are both to be calibrated
    (and whose input is not itself such an output)."""
    relus: dict[str, str] = {}
    for n in model.graph.node:
        if n.op_type == "Relu" and n.output[0] in tensors and n.input[0] in tensors and n.input[0] not in relus:
            relus[n.output[0]] = n.input[0]
    return relus


def cache_supported() -> bool:
    """Whether this onnxruntime's quantize_static writes its calibration result to a file
    (calibration_cache_path, in onnxruntime since 2026): how its ranges reach another backend."""
    import inspect

    from onnxruntime.quantization import quantize_static

    return "calibration_cache_path" in inspect.signature(quantize_static).parameters


def _scalar_ranges(cache: Path) -> dict[str, tuple[float, float]] | None:
    """ORT's calibration cache read back: per-tensor (min, max), or None if any range is not two
    finite scalars (per-channel calibration, a broken file)."""
    from onnxruntime.quantization.calibrate import load_tensors_data

    try:
        data = load_tensors_data(cache)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    out = {}
    for name, td in data.items():
        lo, hi = (np.asarray(v, dtype=np.float64) for v in td.range_value)
        if lo.size != 1 or hi.size != 1 or not np.isfinite([lo.item(), hi.item()]).all() or lo.item() > hi.item():
            return None
        out[name] = (lo.item(), hi.item())
    return out or None


def probe_prints(model_path: Path, probes: np.ndarray, threads: int | None) -> tuple[dict | None, str | None]:
    """Every float tensor's fingerprint on each probe sample (calibration/ranges.py), or None and
    why not (sharing is a saving: its failure is not the export's). Run before ORT's calibration,
    so that this session's memory is back before the quantizer's peak."""
    try:
        return _probe_prints(model_path, probes, threads), None
    except Exception as e:  # noqa: BLE001 - ORT raises its own types
        from resnet_deploy.errors import first_line

        return None, f"fingerprinting the ONNX tensors failed: {first_line(e)}"


def _probe_prints(model_path: Path, probes: np.ndarray, threads: int | None) -> dict[str, list[list[float]]]:
    import onnx
    import onnxruntime as ort

    from resnet_deploy.calibration.ranges import fingerprint

    model = onnx.load(str(model_path))
    have = {o.name for o in model.graph.output}
    model.graph.output.extend(
        onnx.ValueInfoProto(name=o) for n in model.graph.node for o in n.output if o and o not in have
    )
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    sess = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    del model
    (inp,) = sess.get_inputs()
    names = [o.name for o in sess.get_outputs()]
    prints: dict[str, list[list[float]]] = {}
    for x in probes:
        x = np.ascontiguousarray(x[None, ...], dtype=np.float32)
        for n, v in [(inp.name, x), *zip(names, sess.run(names, {inp.name: x}))]:
            if np.asarray(v).dtype.kind == "f":
                prints.setdefault(n, []).append(fingerprint(v))
    return prints


def measured_ranges(cache: Path, prints: dict[str, list], probes: np.ndarray, samples: int) -> dict | str:
    """The ranges ORT's calibration wrote to `cache`, with the fingerprints of those tensors
    (a resnet_deploy.calibration.ranges.MeasuredRanges as plain data); or why there are none."""
    from resnet_deploy.calibration.ranges import MeasuredRanges, probe_digest

    ranges = _scalar_ranges(cache)
    if ranges is None:
        return "ONNX Runtime's calibration gave no per-tensor ranges to share"
    ranges = {n: r for n, r in ranges.items() if n in prints}
    return MeasuredRanges(
        "ONNX Runtime MinMax calibration of the ONNX export's fp32 model",
        samples,
        probe_digest(probes),
        ranges,
        {n: prints[n] for n in ranges},
    ).to_dict()


def share_problem(method: str) -> str | None:
    """Why this export's ORT calibration cannot give its ranges to another backend, or None."""
    from resnet_deploy.calibration import ranges

    if not ranges.enabled():
        return f"{ranges.ENV}=0"
    if method != "minmax":
        return f"the ONNX calibration method is {method}, not minmax: its ranges are not the other backend's statistic"
    if not cache_supported():
        import onnxruntime

        return f"onnxruntime {onnxruntime.__version__} has no calibration_cache_path; a newer one has"
    return None
