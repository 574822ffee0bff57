"""Activation ranges measured once on a calibration set and used by a second backend's quantizer.

ONNX Runtime's MinMax calibration (the ONNX int8 export's own pass, in the worker process) and
our TFLite calibrator (targets/tflite/calibrate.py) record the same statistic: every activation's
min and max over every calibration sample, in float32, of the same network. When one export makes
both, the TFLite export takes ORT's ranges instead of running its own pass over the samples
(ResNet-50 @224, 200 samples, 2 cores: the TFLite step 26-30 -> 9-13 s; README "Export time and
memory").

To use ORT's range for a TFLite tensor, the tensor must be found in the ONNX graph. Names do not
say it (tf2onnx and the TFLite converter name, fuse and transpose differently), values do: each
tensor's fingerprint (size, min, max, mean, rms) on the first PROBES calibration samples must
agree within TOLERANCE. Tensors that agree there and differ elsewhere (a dead ReLU's zeros) are
caught because every candidate's range must then agree too. One tensor without a match, and the
TFLite export calibrates itself and says why (the manifest's calibrator record).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

ENV = "RESNET_DEPLOY_SHARED_RANGES"  # "0": every backend runs its own calibration pass
PROBES = 2  # calibration samples whose activations identify a tensor across two graphs
# Relative to the tensor's largest magnitude on a probe. ORT and XNNPACK compute one float32
# network with different kernels: their ResNet-50 activations differ by ~1e-6 of that here.
TOLERANCE = 1e-4


def enabled() -> bool:
    return os.environ.get(ENV, "1") != "0"


def fingerprint(a: np.ndarray) -> list[float]:
    """size, min, max, mean and rms of one tensor: the same in any layout."""
    x = np.asarray(a, dtype=np.float64).ravel()
    return [float(x.size), float(x.min()), float(x.max()), float(x.mean()), float(np.sqrt(np.dot(x, x) / x.size))]


def probe_digest(probes: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(probes, dtype="<f4").tobytes()).hexdigest()


@dataclass
class MeasuredRanges:
    """Per-tensor (min, max) over `samples` calibration samples, and each tensor's fingerprint on
    the first PROBES of them (whose bytes hash to `probe_sha`). Plain data: it crosses a pipe."""

    source: str
    samples: int
    probe_sha: str
    ranges: dict[str, tuple[float, float]]
    prints: dict[str, list[list[float]]]

    def to_dict(self) -> dict:
        return dict(vars(self))

    @classmethod
    def from_dict(cls, d: dict) -> "MeasuredRanges":
        return cls(**d)


def _agreeing(theirs: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """Which of `theirs` (N, PROBES, 5) fingerprints are those of the tensor `fp` (PROBES, 5)."""
    if theirs.shape[1:] != fp.shape:
        return np.zeros(len(theirs), dtype=bool)
    size = (theirs[:, :, 0] == fp[None, :, 0]).all(axis=1)
    scale = np.maximum(np.abs(theirs[:, :, 1:3]).max(axis=2), np.abs(fp[:, 1:3]).max(axis=1)[None, :])[:, :, None]
    return size & (np.abs(theirs[:, :, 1:] - fp[None, :, 1:]) <= TOLERANCE * scale + 1e-30).all(axis=(1, 2))


def match(measured: MeasuredRanges, prints: dict[Any, np.ndarray]) -> tuple[dict[Any, tuple[float, float]] | None, str]:
    """The measured range of every tensor in `prints` (key -> its (PROBES, 5) fingerprint), or
    None and why not."""
    names = list(measured.prints)
    theirs = np.array([measured.prints[n] for n in names], dtype=np.float64).reshape(len(names), -1, 5)
    out: dict[Any, tuple[float, float]] = {}
    for key, fp in prints.items():
        hits = [names[j] for j in np.flatnonzero(_agreeing(theirs, np.asarray(fp, dtype=np.float64)))]
        if not hits:
            return None, f"tensor {key} has no counterpart among the {len(names)} measured tensors"
        lo, hi = (np.array([measured.ranges[n][i] for n in hits]) for i in (0, 1))
        width = max(float(hi.max() - lo.min()), 1e-30)
        if max(float(np.ptp(lo)), float(np.ptp(hi))) > TOLERANCE * width:
            return (
                None,
                f"tensor {key} matches {len(hits)} measured tensors whose ranges differ ({', '.join(hits[:3])})",
            )
        out[key] = (float(lo[0]), float(hi[0]))
    return out, f"{len(out)} tensors matched on {PROBES} probe samples"
