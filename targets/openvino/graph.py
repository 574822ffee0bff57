"""The OpenVINO IR's op graph: which op produces each tensor and which ops read it, for keeping layers in float
(quantize/fallback.py) and profiling: op names (NNCF's IgnoredScope)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from resnet_deploy.backend.target import FileOps, Graph

# OpenVINO ops that only move data between layouts: a layer's tensor is read through them.
LAYOUT_OPS = frozenset({"Transpose", "Reshape", "Convert", "Squeeze", "Unsqueeze"})


def float_graph(path: Path) -> Graph:
    """Tensors are op names here (the layer map names an op's output); layout ops are looked
    through both ways, so a layer read through a Transpose maps to the op that computes it."""
    import openvino as ov

    m = ov.Core().read_model(str(path))
    producer: dict[str, str] = {}
    consumers: dict[str, list[str]] = {}

    def compute_op(op: Any) -> Any:
        while op.get_type_name() in LAYOUT_OPS:
            op = op.input_value(0).get_node()
        return op

    def readers(op: Any) -> list[str]:
        out = []
        for port in op.outputs():
            for target in port.get_target_inputs():
                node = target.get_node()
                if node.get_type_name() in LAYOUT_OPS:
                    out.extend(readers(node))
                elif node.get_type_name() != "Result":
                    out.append(node.get_friendly_name())
        return out

    for op in m.get_ordered_ops():
        src = compute_op(op)
        producer[op.get_friendly_name()] = src.get_friendly_name()
        consumers[op.get_friendly_name()] = readers(src)
    return producer, consumers


def file_ops(path: Path) -> FileOps:
    """(op name, input op names, [op name]) of the IR, in graph order (profiling.py)."""
    import openvino as ov

    ops = ov.Core().read_model(str(path)).get_ordered_ops()
    return [
        (
            op.get_friendly_name(),
            [op.input_value(i).get_node().get_friendly_name() for i in range(op.get_input_size())],
            [op.get_friendly_name()],
        )
        for op in ops
    ]
