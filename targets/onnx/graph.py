"""The ONNX graph: which op produces each tensor and which ops read it, for keeping layers in float
(quantize/fallback.py) and profiling: ONNX node names (ORT's nodes_to_exclude)."""

from __future__ import annotations

from pathlib import Path

from resnet_deploy.backend.target import FileOps, Graph


def float_graph(path: Path) -> Graph:
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


def file_ops(path: Path) -> FileOps:
    """(op name, input tensors, output tensors) of the file, in graph order (profiling.py)."""
    import onnx

    g = onnx.load(str(path), load_external_data=False).graph
    return [(n.name, list(n.input), list(n.output)) for n in g.node]
