"""Why a layer loses precision in int8, not only where (diagnose's root-cause table). Every SQNR
here weighs each channel alike, as diagnose's do: one large channel must not hide the others.

For each damaged layer, on the Keras model and the diagnose inputs, each half of int8 alone:
- weights: the layer's convs/dense (its own, or those fused into it) with weights on the
  backends' grid (symmetric per output channel, biascorrect.quantized) and float inputs: the
  SQNR of their outputs;
- activations: the layer's output quantized per tensor (uint8/int8 over its min..max, as the
  backends calibrate it) and nothing else: its SQNR;
and what shapes its range: the largest channel's range over the median channel's (one outlier
channel sets the step for all), the largest value over the 99.99th percentile (a long tail),
the share of nonzero values in the lowest two quantization bins (lost to rounding), and the
share outside the calibration set's range (clipped). One suggested fix per layer.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from resnet_deploy.exporting import layermap
from resnet_deploy.exporting.equalize import SPREAD_OUTLIER
from resnet_deploy.exporting.equalize import spread as channel_spread

WEIGHTED = ("Conv2D", "Dense", "DepthwiseConv2D")


def _sqnr(ref: np.ndarray, got: np.ndarray) -> float:
    """SQNR with every channel weighted alike, as diagnose measures (layermap.channel_scale)."""
    scale = layermap.channel_scale(ref)
    r, g = ref.astype(np.float64) / scale, got.astype(np.float64) / scale
    noise = float(np.sum((g - r) ** 2))
    signal = float(np.sum(r**2))
    return math.inf if noise == 0 else 10 * math.log10(signal / noise) if signal else -math.inf


def fake_quant_tensor(t: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Per-tensor asymmetric 8-bit over [lo, hi] (zero exactly representable), as calibrated."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    step = (hi - lo) / 255 or 1.0
    zero = round(-lo / step)
    return ((np.clip(np.round(t / step) + zero, 0, 255) - zero) * step).astype(np.float32)


def range_stats(t: np.ndarray, calib_absmax: float | None = None) -> dict:
    """What shapes a tensor's int8 range (channels last)."""
    a = np.abs(t.reshape(-1, t.shape[-1]).astype(np.float64))
    per_channel = a.max(axis=0)
    spread = channel_spread(per_channel)
    flat = a.ravel()
    p9999 = float(np.percentile(flat, 99.99)) if flat.size else 0.0
    step = (float(t.max()) - min(float(t.min()), 0.0)) / 255 or 1.0
    nonzero = flat[flat > 0]
    return {
        "channel_spread": round(spread, 2),
        "outlier_channel": int(np.argmax(per_channel)) if spread >= SPREAD_OUTLIER else None,
        "max_over_p99_99": round(float(flat.max()) / p9999, 2) if p9999 > 0 else None,
        "low_bins_pct": round(100 * float(np.mean(nonzero < 2 * step)), 2) if nonzero.size else 0.0,
        "clipped_pct": (
            round(100 * float(np.mean(flat > calib_absmax * (1 + 1e-6))), 3) if calib_absmax is not None else None
        ),
    }


def _weighted_in(model: Any, layer: str, folded: list[dict]) -> list[str]:
    """The conv/dense layers whose output `layer` carries: itself, or those fused into it on any backend."""
    names = dict.fromkeys([layer, *(k for f in folded for k, v in f.items() if v == layer)])
    return [n for n in names if type(model.get_layer(n)).__name__ in WEIGHTED]


def _weights_sqnr(model: Any, names: list[str], acts: dict, x: np.ndarray) -> float | None:
    """The worst SQNR of these layers' outputs with int8-grid weights (float inputs)."""
    from resnet_deploy.exporting.biascorrect import quantized

    worst = None
    for n in names:
        layer = model.get_layer(n)
        preds = layermap.predecessors(layer)
        src = acts.get(preds[0]) if preds else None
        src = x if src is None else src
        ws = layer.get_weights()
        ref = np.asarray(layer(src))
        layer.set_weights([quantized(ws[0]), *ws[1:]])
        try:
            got = np.asarray(layer(src))
        finally:
            layer.set_weights(ws)
        s = _sqnr(ref, got)
        worst = s if worst is None else min(worst, s)
    return worst


def fix(row: dict, limit: float) -> str:
    """One suggested fix for a layer from its row."""
    w, a = row.get("weights_sqnr_db"), row["activations_sqnr_db"]
    if row["channel_spread"] >= SPREAD_OUTLIER and a < limit + 10:
        return f"--repair cle (channel {row['outlier_channel']} is {row['channel_spread']:g}x the median channel)"
    if w is not None and w < limit and (row.get("input_spread") or 0) >= SPREAD_OUTLIER:
        return f"--repair cle (its input's largest channel is {row['input_spread']:g}x the median; its weights for it round to 0)"
    if w is not None and w < limit:
        return "--repair bias-correction, else keep it in float (its weights lose precision on the int8 grid)"
    if a < limit:
        return "keep it in float (its activation range has no single outlier channel to even out)"
    return "none on its own: alone it quantizes fine; the damage comes from the layers before it"


def analyse(model: Any, layers: list[str], folded: list[dict], x: np.ndarray, limit: float, calib_absmax: dict) -> dict:
    """{layer: its row} for `layers` on inputs x (every layer's Keras output computed once)."""
    acts = layermap.keras_activations(model, x)
    out = {}
    for name in layers:
        t = acts[name]
        weighted = _weighted_in(model, name, folded)
        sources = [p for w in weighted for p in layermap.predecessors(model.get_layer(w)) if p in acts]
        row: dict[str, Any] = {
            "weights_sqnr_db": _round(_weights_sqnr(model, weighted, acts, x)),
            "input_spread": max((range_stats(acts[p])["channel_spread"] for p in sources), default=None),
            "activations_sqnr_db": _round(_sqnr(t, fake_quant_tensor(t, float(t.min()), float(t.max())))),
            **range_stats(t, calib_absmax.get(name)),
        }
        row["fix"] = fix(row, limit)
        out[name] = row
    return out


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 2) if math.isfinite(v) else v


MAX_LAYERS = 12  # damaged layers analysed, first in graph order (after an outlier every later layer is damaged)


def damaged(model: Any, backends: dict[str, dict], limit: float) -> list[str]:
    """Layers below the SQNR limit on any backend, in graph order, at most MAX_LAYERS."""
    below = {lay["layer"] for r in backends.values() for lay in r["layers"] if lay["sqnr_db"] < limit}
    return [layer.name for layer in layermap.computing_layers(model) if layer.name in below][:MAX_LAYERS]


def table(model: Any, backends: dict[str, dict], x: np.ndarray, limit: float, calib: Any, progress: Any) -> dict:
    """The root-cause rows of every damaged layer (diagnose's record)."""
    from resnet_deploy.exporting.repair import channel_stats

    layers = damaged(model, backends, limit)
    if not layers:
        return {}
    stats = channel_stats(model, layers, calib, "absmax", progress, "calibration ranges of the damaged layers")
    absmax = {k: float(v.max()) for k, v in stats.items()}
    return analyse(model, layers, [r["folded"] for r in backends.values()], x, limit, absmax)
