"""ONNX Runtime calibration in an optimised session.

ORT's calibrators run their augmented model (a ReduceMin/ReduceMax pair after every tensor to
calibrate) in a session at ORT_DISABLE_ALL, without the CPU's layout and fusion transformations.
At ORT_ENABLE_ALL the same augmented model runs ResNet-50 @224 at 64 instead of 81 ms per sample
here (2 cores, AMD EPYC Zen 3; `python benchmarks/export_speed.py`). The tensors, the reductions
and the merging of ranges stay ORT's own; only the session it builds is optimised, for the
duration of one quantize_static call. The values differ by float rounding only (tested:
every range within 1e-4 of its width). RESNET_DEPLOY_ORT_CALIBRATION=ort keeps ORT's own session.
"""
from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator

ENV = "RESNET_DEPLOY_ORT_CALIBRATION"


def enabled() -> bool:
    return os.environ.get(ENV, "optimized").lower() != "ort"


def record() -> dict:
    """The manifest's note of the calibration session, and why."""
    if enabled():
        return {"calibration_session": "ORT_ENABLE_ALL", "calibration_session_why":
                f"ORT's calibrator session runs unoptimised (ORT_DISABLE_ALL); {ENV}=ort for ORT's own"}
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
        self.infer_session = ort.InferenceSession(self.augmented_model_path, sess_options=options,
                                                  providers=self.execution_providers)

    calibrate.CalibraterBase.create_inference_session = create_inference_session
    try:
        yield
    finally:
        calibrate.CalibraterBase.create_inference_session = real
