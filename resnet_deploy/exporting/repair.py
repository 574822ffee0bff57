"""Repairs of int8 accuracy applied once to the Keras model, before any backend converts it, so
that TFLite, ONNX and OpenVINO all get them (`export --repair cle,bias-correction`).

- cle: cross-layer equalization of scale groups (equalize.py): the fp32 function is unchanged
  (positive homogeneity), the activation ranges one outlier channel set are evened out.
- bias-correction: the mean shift int8 weight rounding adds, taken out of the biases
  (biascorrect.py): fp32 moves by exactly what int8 rounding puts back.

Each is measured on the calibration set (per-channel activation ranges, per-channel input means)
of the model as the earlier repairs left it, and recorded in the artifact's manifest with what
it changed. The repaired model is never written: it is remade from the same model and
calibration set when needed (diagnose compares a repaired artifact with it), and the manifest's
`repaired_sha256` (pipeline.with_repairs) proves it is the same one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from resnet_deploy.config import REPAIRS
from resnet_deploy.errors import InputError
from resnet_deploy.progress import Progress

STATS_BATCH = 8


def channel_stats(
    model: Any, names: list[str], calib: Any, stat: str, progress: Progress | None = None, label: str = ""
) -> dict[str, np.ndarray]:
    """Per layer output (or model input) in `names`, per channel over the calibration set:
    "absmax" (largest |x|) or "mean". One batch of outputs is held at a time."""
    import keras

    inputs = {t._keras_history[0].name: i for i, t in enumerate(model.inputs)}
    wanted = [n for n in names if n not in inputs]
    probe = keras.Model(model.inputs, [model.get_layer(n).output for n in wanted]) if wanted else None
    acc: dict[str, np.ndarray] = {}
    batches = calib.batches(STATS_BATCH)
    total = -(-len(calib) // STATS_BATCH)
    for x, _ in (progress or Progress()).track(batches, total, label or f"calibration statistics ({stat})"):
        outs = probe([x], training=False) if probe is not None else []
        outs = [outs] if probe is not None and len(wanted) == 1 else outs
        arrays = {n: np.asarray(o) for n, o in zip(wanted, outs)}
        arrays.update({n: x for n in names if n in inputs})
        for n, a in arrays.items():
            flat = a.reshape(-1, a.shape[-1]).astype(np.float64)
            v = np.abs(flat).max(axis=0) if stat == "absmax" else flat.sum(axis=0)
            acc[n] = v if n not in acc else (np.maximum(acc[n], v) if stat == "absmax" else acc[n] + v)
    if stat == "mean":
        return {n: acc[n] / (len(calib) * _positions(model, n, inputs)) for n in acc}
    return acc


def _positions(model: Any, name: str, inputs: dict) -> int:
    """Values per channel per sample in a layer's output (H*W for a map, 1 for a vector)."""
    shape = model.inputs[inputs[name]].shape if name in inputs else model.get_layer(name).output.shape
    return int(np.prod([d for d in shape[1:-1]])) if len(shape) > 2 else 1


def repaired(model: Any, repairs: tuple[str, ...], calib: Any, progress: Progress | None = None) -> tuple[Any, dict]:
    """A copy of `model` with `repairs` applied in order, and the manifest's record of them."""
    from resnet_deploy.exporting import biascorrect, equalize

    progress = progress or Progress()
    if calib is None:
        raise InputError("--repair needs calibration data: it applies to int8 (pass --calib).")
    clone = _clone(model)
    done: list[dict] = []
    for name in repairs:
        with progress.step(f"repair {name} on {len(calib)} calibration samples"):
            if name == "cle":
                stats = channel_stats(clone, equalize.members(clone), calib, "absmax", progress, "activation ranges")
                done.append({"name": name, "what": REPAIRS[name], **equalize.equalize(clone, stats)})
            else:
                means = channel_stats(clone, biascorrect.sources(clone), calib, "mean", progress, "input means")
                done.append({"name": name, "what": REPAIRS[name], **biascorrect.correct(clone, means)})
    return clone, {"applied": done, "calibration_samples": len(calib)}


def _clone(model: Any) -> Any:
    import keras

    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone
