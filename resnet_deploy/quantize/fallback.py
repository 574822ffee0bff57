"""Keeping Keras layers in float inside an int8 artifact: which backend ops that means.

A layer kept in float computes in float and hands its output to its consumers in float: its op
(the one the layer map names, or the op it was folded into) and every op that reads that op's
output are left unquantized. Keeping only the producer would not help: a quantized consumer
puts the tensor back through an int8 quantizer with the same broken range. Names come from the
backend's fp32 artifact (its manifest's exact layer map, and the graph in its model file), in
the backend's own naming: TFLite op output tensor names (QuantizationDebugger's denylisted
nodes), ONNX node names (ORT's nodes_to_exclude), OpenVINO op names (NNCF's IgnoredScope)."""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable

from resnet_deploy.errors import ExportError, InputError

# OpenVINO ops that only move data between layouts: a layer's tensor is read through them.
OV_LAYOUT_OPS = frozenset({"Transpose", "Reshape", "Convert", "Squeeze", "Unsqueeze"})

Graph = tuple[dict[str, str], dict[str, list[str]]]  # tensor -> producer node, tensor -> consumer nodes


def tensor_of(layer_map: dict, layer: str) -> str:
    """The tensor (without its "#index") that carries `layer` in an fp32 layer map, looking
    through folded layers (a conv folded into its batch norm is carried by the batch norm's)."""
    layers, folded, seen = layer_map.get("layers") or {}, layer_map.get("folded") or {}, set()
    while layer not in layers:
        if layer in seen or layer not in folded:
            raise InputError(f"layer {layer!r} is not in the fp32 artifact's layer map; "
                             "name a layer that computes something (see `diagnose`).")
        seen.add(layer)
        layer = folded[layer]
    return layers[layer].rsplit("#", 1)[0] if "#" in layers[layer] else layers[layer]


def _tflite_graph(path: Path) -> Graph:
    from targets.tflite import load_interpreter_class

    cls, _ = load_interpreter_class()
    interp = cls(model_path=str(path))  # not allocated: no delegate replaces the ops
    names = {d["index"]: d["name"] for d in interp.get_tensor_details()}
    producer: dict[str, str] = {}
    consumers: dict[str, list[str]] = {}
    for op in interp._get_ops_details():  # noqa: SLF001 - LiteRT's only listing of ops
        node = names[op["outputs"][0]]
        for i in op["outputs"]:
            producer[names[i]] = node
        for i in op["inputs"]:
            if i >= 0:
                consumers.setdefault(names[i], []).append(node)
    return producer, consumers


def _onnx_graph(path: Path) -> Graph:
    """The graph ORT quantizes: the fp32 file after quant_pre_process, as targets/onnx/__init__.py does
    (it fuses MatMul+Add into Gemm, so node names differ from the fp32 artifact's)."""
    import tempfile

    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="rd-fallback-") as tmp:
        quant_pre_process(str(path), f"{tmp}/pre.onnx")
        g = onnx.load(f"{tmp}/pre.onnx", load_external_data=False).graph
    producer = {o: n.name for n in g.node for o in n.output}
    consumers: dict[str, list[str]] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n.name)
    return producer, consumers


def _openvino_graph(path: Path) -> Graph:
    """Tensors are op names here (the layer map names an op's output); layout ops are looked
    through both ways, so a layer read through a Transpose maps to the op that computes it."""
    import openvino as ov

    m = ov.Core().read_model(str(path))
    producer: dict[str, str] = {}
    consumers: dict[str, list[str]] = {}

    def compute_op(op: Any) -> Any:
        while op.get_type_name() in OV_LAYOUT_OPS:
            op = op.input_value(0).get_node()
        return op

    def readers(op: Any) -> list[str]:
        out = []
        for port in op.outputs():
            for target in port.get_target_inputs():
                node = target.get_node()
                if node.get_type_name() in OV_LAYOUT_OPS:
                    out.extend(readers(node))
                elif node.get_type_name() != "Result":
                    out.append(node.get_friendly_name())
        return out

    for op in m.get_ordered_ops():
        src = compute_op(op)
        producer[op.get_friendly_name()] = src.get_friendly_name()
        consumers[op.get_friendly_name()] = readers(src)
    return producer, consumers


GRAPHS: dict[str, Callable[[Path], Graph]] = {"tflite": _tflite_graph, "onnx": _onnx_graph,
                                              "openvino": _openvino_graph}


@functools.lru_cache(maxsize=8)
def _graph(target: str, path: str, mtime_ns: int) -> Graph:
    """Read once per fp32 file: the budget's search asks for every candidate layer at every step
    (for ONNX each read runs quant_pre_process)."""
    return GRAPHS[target](Path(path))


def float_nodes(target: str, fp32: Any, layers: list[str]) -> tuple[str, ...]:
    """The backend op names that keep `layers` in float, from the backend's fp32 artifact."""
    layer_map = fp32.manifest.get("layer_map") or {}
    if target not in GRAPHS:
        raise InputError(f"keeping layers in float is not supported for target {target!r}; "
                         f"it is for {', '.join(GRAPHS)}.")
    if "layers" not in layer_map:
        raise ExportError(f"the {target} fp32 artifact at {fp32.path} has no layer map "
                          f"({layer_map.get('error', 'none recorded')}); re-export it with `export --precision fp32`.")
    producer, consumers = _graph(target, str(fp32.model_file), fp32.model_file.stat().st_mtime_ns)
    names: list[str] = []
    for layer in layers:
        tensor = tensor_of(layer_map, layer)
        if tensor not in producer:
            raise ExportError(f"the {target} fp32 graph has no tensor {tensor!r} for layer {layer!r}; "
                              "re-export fp32 with this version.")
        for node in [producer[tensor], *consumers.get(tensor, [])]:
            if node not in names:
                names.append(node)
    return tuple(names)
