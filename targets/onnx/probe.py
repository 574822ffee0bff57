"""Every intermediate tensor of an ONNX file, as float32 (integers dequantized with their own scale
and zero point), for diagnose and the layer map: every node output added as a graph output, graph optimizations off. The probe loads the file once and then
runs one batch at a time."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from resnet_deploy.backend.target import Probe


def probe(path: Path) -> Probe:
    import onnx as onnx_lib
    import onnxruntime as ort

    m = onnx_lib.load(str(path))
    have = {o.name for o in m.graph.output}
    for node in m.graph.node:
        if node.op_type in ("QuantizeLinear", "Constant", "Shape"):
            continue  # integer or constant outputs
        for out in node.output:
            if out and out not in have:
                m.graph.output.append(onnx_lib.helper.make_tensor_value_info(out, onnx_lib.TensorProto.FLOAT, None))
                have.add(out)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every tensor
    so.log_severity_level = 3
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    names, in_name = [o.name for o in sess.get_outputs()], sess.get_inputs()[0].name

    def run(x: np.ndarray) -> dict[str, np.ndarray]:
        values = sess.run(names, {in_name: x})
        return {n: np.asarray(v, np.float32) for n, v in zip(names, values) if np.asarray(v).dtype.kind == "f"}

    return run
