"""Cross-layer equalization on the Keras model (`--repair cle`), function-preserving.

Nagel et al., "Data-Free Quantization Through Weight Equalization and Bias Correction" (2019),
equalize a conv -> ReLU -> conv pair: ReLU is positively homogeneous, so dividing channel c of
the first layer's output by s_c > 0 and multiplying the second layer's input channel c by s_c
computes the same function. A ResNet's channels do not come in pairs: the residual stream runs
through Add, ReLU and pooling to several convs, so the unit here is a *scale group*: every
tensor joined through such channel-wise, positively homogeneous ops (ReLU, Add, max/average
pooling, zero padding, dropout), the layers that produce it (Conv2D, Dense, BatchNormalization:
their output channel is divided by s_c) and the layers that read it (Conv2D, Dense, their input
channel multiplied by s_c; BatchNormalization, its statistics rescaled). A group that reaches
the model's output or any other op is left alone.

The scale: every backend quantizes activations per tensor and weights per output channel, so
what one outlier channel breaks is the activation range and what scaling breaks in return is
the readers' weights. s_c balances the two, measured relative to their medians over channels:
s_c = sqrt((a_c / median a) / (w_c / median w)), a_c the channel's largest |activation| over the
calibration set (every tensor of the group), w_c the largest |weight| the readers apply to it.
An outlier channel 1000x the others (weights 1/1000 of them) gets s_c ~ 1000; ordinary channels
get s_c near 1. Data-aware (the activation ranges), where the paper's ranges are weights only:
per-channel weights make the producer's weight range harmless, per-tensor activations do not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from resnet_deploy.exporting.layermap import computing_layers, predecessors, successors

PRODUCERS = ("Conv2D", "Dense", "BatchNormalization")
READERS = ("Conv2D", "Dense", "BatchNormalization")
PASSTHROUGH = (
    "ReLU",
    "Add",
    "MaxPooling2D",
    "AveragePooling2D",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling2D",
    "ZeroPadding2D",
    "Dropout",
    "Identity",
)
SPREAD_OUTLIER = 8.0  # a channel this many times the median channel's range sets the tensor's int8 step
S_RANGE = (1e-4, 1e4)  # scales beyond this are clipped (fp32 keeps ~7 digits: still exact to float tolerance)


@dataclass
class Group:
    """Tensors (layer names whose outputs share the scales), their producers and readers."""

    members: list[str] = field(default_factory=list)
    producers: list[str] = field(default_factory=list)
    readers: list[str] = field(default_factory=list)
    why_not: str | None = None


def _kind(layer: Any) -> str:
    """ "producer" | "pass" | "other" for the layer as the source of a group's tensor."""
    cls = type(layer).__name__
    cfg = layer.get_config()
    if cls == "ReLU" and (cfg.get("max_value") is not None or cfg.get("negative_slope") or cfg.get("threshold")):
        return "other"  # ReLU6 / leaky: not positively homogeneous
    if cls == "Activation":
        return "pass" if cfg.get("activation") in ("relu", "linear") else "other"
    if cls in PASSTHROUGH:
        return "pass"
    if cls in PRODUCERS and _scalable(layer):
        return "producer"
    return "other"


def _scalable(layer: Any) -> bool:
    """Per-channel weights we can rescale exactly (channels last, no groups, BN with gamma)."""
    cfg, cls = layer.get_config(), type(layer).__name__
    if cls == "BatchNormalization":
        return bool(cfg.get("scale", True)) and cfg.get("axis") in (-1, [-1], 3, [3])
    homogeneous = cfg.get("activation") in (None, "linear", "relu")  # relu(x/s) = relu(x)/s
    if cls == "Conv2D":
        channels_last = cfg.get("data_format", "channels_last") == "channels_last"
        return homogeneous and channels_last and int(cfg.get("groups", 1)) == 1
    return cls == "Dense" and homogeneous


def _reads(layer: Any) -> bool:
    """Whether the layer can take a scale on its input channels (its activation does not matter)."""
    cls, cfg = type(layer).__name__, layer.get_config()
    if cls == "Conv2D":
        return cfg.get("data_format", "channels_last") == "channels_last" and int(cfg.get("groups", 1)) == 1
    return cls == "Dense" or cls == "BatchNormalization" and _scalable(layer)


def find_groups(model: Any) -> list[Group]:
    """Every scale group of the model, in graph order; groups that cannot be rescaled carry why_not."""
    layers = {layer.name: layer for layer in computing_layers(model)}
    succ = successors(model)
    outputs = {t._keras_history[0].name for t in model.outputs}
    seen: set[str] = set()
    groups = []
    for name in layers:
        if name in seen or _kind(layers[name]) != "producer":
            continue
        g, stack = Group(), [name]
        while stack:
            t = stack.pop()
            if t in g.members:
                continue
            g.members.append(t)
            kind = _kind(layers[t])
            if t in outputs:
                g.why_not = f"{t} is a model output"
            if kind == "producer":
                g.producers.append(t)
            elif kind == "pass":
                for p in predecessors(layers[t]):
                    if p in layers:
                        stack.append(p)
                    else:
                        g.why_not = f"{t} reads the model input"
            else:
                g.why_not = g.why_not or f"{t} ({type(layers[t]).__name__}) cannot be rescaled per channel"
            for c in succ[t]:
                if _kind(layers[c]) == "pass":
                    stack.append(c)
                elif _reads(layers[c]):
                    if c not in g.readers:
                        g.readers.append(c)
                else:
                    g.why_not = g.why_not or f"{c} ({type(layers[c]).__name__}) reads {t} and cannot absorb a scale"
        seen.update(g.members)
        groups.append(g)
    return groups


def _reader_weight(layer: Any) -> np.ndarray | None:
    """Per input channel, the largest |weight| relative to its output channel's largest (what
    sets that output channel's int8 scale); None for BatchNormalization (no weight to quantize)."""
    cls = type(layer).__name__
    if cls == "BatchNormalization":
        return None
    k = np.abs(layer.get_weights()[0])  # Conv2D (kh, kw, cin, cout); Dense (cin, cout)
    per_out = np.maximum(k.reshape(-1, k.shape[-1]).max(axis=0), 1e-30)
    rel = k / per_out
    return rel.reshape(-1, k.shape[-2], k.shape[-1]).max(axis=(0, 2))


def scales(group: Group, model: Any, act_max: dict[str, np.ndarray]) -> np.ndarray | None:
    """s_c for the group (see the module's docstring); None when no reader has weights."""
    a = np.max([act_max[m] for m in group.members], axis=0).astype(np.float64)
    ws = [w for w in (_reader_weight(model.get_layer(r)) for r in group.readers) if w is not None]
    if not ws:
        return None
    w = np.max(ws, axis=0).astype(np.float64)
    live = (a > 0) & (w > 0)
    if not live.any():
        return None
    a_rel = a / np.median(a[live])
    w_rel = w / np.median(w[live])
    s = np.ones_like(a)
    s[live] = np.sqrt(a_rel[live] / w_rel[live])
    return np.clip(s, *S_RANGE)


def apply_scales(model: Any, group: Group, s: np.ndarray) -> None:
    """Divide the producers' output channels by s, multiply the readers' input channels by s."""
    for name in group.producers:
        layer = model.get_layer(name)
        ws = layer.get_weights()
        if type(layer).__name__ == "BatchNormalization":
            ws[0] = ws[0] / s  # gamma
            if layer.get_config().get("center", True):
                ws[1] = ws[1] / s  # beta
        else:  # Conv2D / Dense: kernel's last axis, and the bias
            ws[0] = ws[0] / s
            if len(ws) > 1:
                ws[1] = ws[1] / s
        layer.set_weights([w.astype(np.float32) for w in ws])
    for name in group.readers:
        layer = model.get_layer(name)
        ws = layer.get_weights()
        if type(layer).__name__ == "BatchNormalization":
            _bn_reads_scaled(layer, ws, s)
        else:
            shape = [1] * ws[0].ndim
            shape[-2] = len(s)
            ws[0] = ws[0] * s.reshape(shape)
        layer.set_weights([w.astype(np.float32) for w in ws])


def _bn_reads_scaled(layer: Any, ws: list, s: np.ndarray) -> None:
    """A BatchNormalization whose input channel c is now x/s_c: mean/s, var/s^2, and gamma
    rescaled so that gamma'(x/s - mean/s)/sqrt(var/s^2 + eps) = gamma(x - mean)/sqrt(var + eps)."""
    eps = float(layer.get_config().get("epsilon", 1e-3))
    gamma, mean, var = ws[0], ws[-2], ws[-1]
    new_var = var / s**2
    ws[0] = gamma * s * np.sqrt(new_var + eps) / np.sqrt(var + eps)
    ws[-2], ws[-1] = mean / s, new_var


def equalize(model: Any, act_max: dict[str, np.ndarray], min_spread: float = SPREAD_OUTLIER) -> dict:
    """Rescale (in place) every group that can be and whose largest channel range is at least
    `min_spread` times the median channel's; what changed, per group. Groups below it are left as
    they are: already balanced, equalizing them moves precision between activations and weights
    for no gain (measured: untrained ResNet-50 @224, every group equalized, int8 SQNR 37.2 ->
    36.8 dB on TFLite, benchmarks/repairs.py)."""
    changed, skipped, balanced = [], [], 0
    for g in find_groups(model):
        if g.why_not:
            skipped.append({"tensors": g.members, "why": g.why_not})
            continue
        s = scales(g, model, act_max)
        ranges = np.max([act_max[m] for m in g.members], axis=0)
        spread_before = spread(ranges)
        if s is None or spread_before < min_spread:  # no reader with weights (conv -> BN only), or balanced
            balanced += s is not None
            continue
        apply_scales(model, g, s)
        spread_after = spread(ranges / s)
        changed.append(
            {
                "producers": g.producers,
                "readers": g.readers,
                "channels": int(len(s)),
                "max_scale": round(float(s.max()), 3),
                "min_scale": round(float(s.min()), 5),
                "range_spread_before": round(spread_before, 2),
                "range_spread_after": round(spread_after, 2),
            }
        )
    return {"groups": changed, "balanced_groups": balanced, "min_spread": min_spread, "left_alone": skipped}


def spread(a: np.ndarray) -> float:
    """Largest channel range over the median one: how much one channel sets the tensor's scale."""
    live = a[a > 0]
    return float(live.max() / np.median(live)) if live.size else 1.0


def members(model: Any) -> list[str]:
    """Every tensor whose per-channel range `equalize` reads (the calibration pass collects these)."""
    return [m for g in find_groups(model) if not g.why_not for m in g.members]
