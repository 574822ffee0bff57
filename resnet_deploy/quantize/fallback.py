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
from typing import TYPE_CHECKING, Any

from resnet_deploy.errors import ExportError, InputError
from resnet_deploy.exporting.layermap import base_name

if TYPE_CHECKING:
    from resnet_deploy.backend.target import Graph


def tensor_of(layer_map: dict, layer: str) -> str:
    """The tensor (without its "#index") that carries `layer` in an fp32 layer map, looking
    through folded layers (a conv folded into its batch norm is carried by the batch norm's)."""
    layers, folded, seen = layer_map.get("layers") or {}, layer_map.get("folded") or {}, set()
    while layer not in layers:
        if layer in seen or layer not in folded:
            raise InputError(
                f"layer {layer!r} is not in the fp32 artifact's layer map; "
                "name a layer that computes something (see `diagnose`)."
            )
        seen.add(layer)
        layer = folded[layer]
    return base_name(layers[layer])


@functools.lru_cache(maxsize=8)
def _graph(target: str, path: str, mtime_ns: int) -> "Graph":
    """Read once per fp32 file: the budget's search asks for every candidate layer at every step
    (for ONNX each read runs quant_pre_process)."""
    from resnet_deploy.backend.target import get_target

    graph = get_target(target).float_graph(Path(path))
    if graph is None:  # float_nodes checked that the target has the hook
        raise InputError(f"target {target!r} gives no op graph; keeping layers in float needs one.")
    return graph


def float_nodes(target: str, fp32: Any, layers: list[str]) -> tuple[str, ...]:
    """The backend op names that keep `layers` in float, from the backend's fp32 artifact."""
    layer_map = fp32.manifest.get("layer_map") or {}
    from resnet_deploy.backend.target import get_target, targets_with

    if not get_target(target).has("float_graph"):
        raise InputError(
            f"keeping layers in float is not supported for target {target!r}; "
            f"it is for {', '.join(targets_with('float_graph'))}."
        )
    if "layers" not in layer_map:
        raise ExportError(
            f"the {target} fp32 artifact at {fp32.path} has no layer map "
            f"({layer_map.get('error', 'none recorded')}); re-export it with `export --precision fp32`."
        )
    producer, consumers = _graph(target, str(fp32.model_file), fp32.model_file.stat().st_mtime_ns)
    names: list[str] = []
    for layer in layers:
        tensor = tensor_of(layer_map, layer)
        if tensor not in producer:
            raise ExportError(
                f"the {target} fp32 graph has no tensor {tensor!r} for layer {layer!r}; "
                "re-export fp32 with this version."
            )
        for node in [producer[tensor], *consumers.get(tensor, [])]:
            if node not in names:
                names.append(node)
    return tuple(names)
