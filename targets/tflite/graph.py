"""The TFLite file's op graph: which op produces each tensor and which ops read it, for keeping layers in float
(quantize/fallback.py) in TFLite's naming: op output tensor names (QuantizationDebugger's denylisted nodes)."""

from __future__ import annotations

from pathlib import Path

from resnet_deploy.backend.target import Graph


def float_graph(path: Path) -> Graph:
    from resnet_deploy.targets.tflite.interpreter import load_interpreter_class

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
