"""Empirical bias correction (`--repair bias-correction`; Nagel et al. 2019, section 4.2).

Rounding a conv's weights to int8 shifts its output's mean: E[(Wq - W) x] = (Wq - W) E[x] is not
zero when the rounding errors of one output channel lean one way. With E[x] measured per input
channel on the calibration set, the shift is taken out of the layer's bias (or, for a conv
without bias feeding a BatchNormalization, put into the BN's moving mean, which is the same
after folding). Wq is the grid every backend here uses for conv weights: symmetric, per output
channel, [-127, 127] (TFLite, ONNX Runtime Q/DQ, OpenVINO from either) - and it commutes with
BN folding (per-output-channel scaling), so the correction holds for the folded weights too.
Not corrected: Dense layers (backends differ on their weight grid) and ONNX Runtime's 7-bit
weights (`reduce_range`, chosen on x86 without VNNI), whose rounding differs from the 8-bit grid
corrected for. The fp32 model changes on purpose, by exactly the shift int8 rounding adds back.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from resnet_deploy.exporting.layermap import computing_layers, predecessors, successors

QMAX = 127  # symmetric int8 weights: [-127, 127]


def quantized(w: np.ndarray) -> np.ndarray:
    """w on the symmetric per-output-channel int8 grid (last axis: output channels)."""
    flat = np.abs(w).reshape(-1, w.shape[-1]).max(axis=0)
    step = np.where(flat > 0, flat / QMAX, 1.0)
    return (np.clip(np.round(w / step), -QMAX, QMAX) * step).astype(w.dtype)


def shift(w: np.ndarray, input_mean: np.ndarray) -> np.ndarray:
    """Per output channel, the mean change int8 rounding makes: sum over taps and inputs of dW * E[x]."""
    dw = quantized(w).astype(np.float64) - w.astype(np.float64)
    return np.einsum("tio,i->o", dw.reshape(-1, w.shape[-2], w.shape[-1]), input_mean.astype(np.float64))


def layers_to_correct(model: Any) -> list[tuple[str, str]]:
    """(conv, the layer whose output it reads, the model input's name included) for every
    channels-last, ungrouped Conv2D fed by one layer."""
    out = []
    for layer in computing_layers(model):
        cfg = layer.get_config()
        if type(layer).__name__ != "Conv2D" or int(cfg.get("groups", 1)) != 1:
            continue
        preds = predecessors(layer)
        if len(preds) == 1 and cfg.get("data_format", "channels_last") == "channels_last":
            out.append((layer.name, preds[0]))
    return out


def correct(model: Any, input_means: dict[str, np.ndarray]) -> dict:
    """Take each conv's int8 rounding shift out of its bias (in place); what changed."""
    succ = successors(model)
    done, skipped, largest = [], [], 0.0
    for conv, source in layers_to_correct(model):
        if source not in input_means:
            continue
        layer = model.get_layer(conv)
        ws = layer.get_weights()
        delta = shift(ws[0], input_means[source])
        if len(ws) > 1:
            ws[1] = (ws[1] - delta).astype(np.float32)
            layer.set_weights(ws)
        elif len(succ[conv]) == 1 and type(model.get_layer(succ[conv][0])).__name__ == "BatchNormalization":
            bn = model.get_layer(succ[conv][0])
            bw = bn.get_weights()
            bw[-2] = (bw[-2] + delta).astype(np.float32)  # BN(y + d) with mean + d is BN(y)
            bn.set_weights(bw)
        else:
            skipped.append(conv)
            continue
        done.append(conv)
        largest = max(largest, float(np.abs(delta).max()))
    return {"layers": len(done), "not_corrected": skipped, "largest_shift": round(largest, 6)}


def sources(model: Any) -> list[str]:
    """The layers whose per-channel output mean `correct` reads."""
    return sorted({src for _, src in layers_to_correct(model)})
