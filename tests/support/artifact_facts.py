"""Read what an artifact really is from the file itself (not from our manifest or flags):
weight dtypes in a .tflite, ONNX initializers and Q/DQ types, OpenVINO IR constants."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import numpy as np


def tflite_weight_dtypes(path: Path) -> Counter:
    """Dtypes of the constant tensors (weights) of a .tflite, counted by element count."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    runtime = {d["index"] for d in interp.get_input_details()} | {d["index"] for d in interp.get_output_details()}
    counts: Counter = Counter()
    for d in interp.get_tensor_details():
        if d["index"] in runtime or len(d["shape"]) < 1:
            continue
        try:  # constant tensors have data before allocate_tensors(); activations raise
            data = interp.get_tensor(d["index"])
        except ValueError:
            continue
        counts[np.dtype(d["dtype"]).name] += int(np.prod(data.shape))
    return counts


def onnx_initializer_dtypes(path: Path) -> Counter:
    import onnx

    m = onnx.load(str(path))
    counts: Counter = Counter()
    for init in m.graph.initializer:
        arr = onnx.numpy_helper.to_array(init)
        counts[arr.dtype.name] += int(arr.size)
    return counts


def onnx_quant_facts(path: Path) -> dict:
    """Activation zero-point dtypes (QuantizeLinear) and the largest |int8 weight| (QDQ weights)."""
    import onnx

    m = onnx.load(str(path))
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in m.graph.initializer}
    act_types = {
        inits[n.input[2]].dtype.name
        for n in m.graph.node
        if n.op_type == "QuantizeLinear" and len(n.input) > 2 and n.input[2] in inits
    }
    weights = [
        inits[n.input[0]]
        for n in m.graph.node
        if n.op_type == "DequantizeLinear" and n.input[0] in inits and inits[n.input[0]].ndim == 4
    ]
    return {
        "activation_zero_point_types": act_types,
        "conv_weights": len(weights),
        "max_abs_weight": max(int(np.abs(w.astype(np.int32)).max()) for w in weights) if weights else None,
    }


def ir_const_types(xml_path: Path) -> Counter:
    """element_type of the Const ops of an OpenVINO IR, counted by element count."""
    counts: Counter = Counter()
    for layer in ET.parse(xml_path).getroot().iter("layer"):
        if layer.get("type") != "Const":
            continue
        data = layer.find("data")
        shape = [int(s) for s in (data.get("shape") or "").split(",") if s.strip()]
        counts[data.get("element_type")] += int(np.prod(shape)) if shape else 1
    return counts


def dominant(counts: Counter) -> str:
    """The dtype holding most weight elements."""
    return counts.most_common(1)[0][0]
