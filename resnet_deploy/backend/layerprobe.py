"""Every intermediate tensor of an artifact, exposed with each runtime's own means: TFLite's
preserve-all-tensors interpreter, extra ONNX graph outputs, OpenVINO's add_outputs. Integer
tensors are dequantized with their own scale and zero point, so all are float32 and comparable.

A probe loads its artifact once and then runs one batch at a time (`probe(x)`), so diagnose
streams samples without rebuilding sessions."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from resnet_deploy.portable.quantio import dequantize, quantize

Probe = Callable[[np.ndarray], dict[str, np.ndarray]]


def tflite(path: Path) -> Probe:
    from targets.tflite import load_interpreter_class

    from resnet_deploy._tf import captured_output

    cls, _ = load_interpreter_class()
    import warnings

    with captured_output(), warnings.catch_warnings():
        # keeping every intermediate tensor is this probe's purpose (diagnose reads them all); LiteRT warns
        # that it is a debugging option that costs memory, which is what diagnose is
        warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors", category=UserWarning)
        interp = cls(model_path=str(path), experimental_preserve_all_tensors=True)
        interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    outputs = [(idx, interp._get_tensor_details(idx, 0))  # noqa: SLF001 - the only way to list op outputs
               for op in interp._get_ops_details() for idx in op["outputs"]]  # noqa: SLF001

    def run(x: np.ndarray) -> dict[str, np.ndarray]:
        scale, zp = inp["quantization"]
        interp.set_tensor(inp["index"], quantize(x, scale, zp, inp["dtype"]))
        interp.invoke()
        return {f"{d['name']}#{idx}": dequantize(interp.get_tensor(idx), *d["quantization"]) for idx, d in outputs}

    return run


def onnx(path: Path) -> Probe:
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


def _producer(port: Any) -> Any:
    """An output port's op (not the Result that add_outputs puts after it)."""
    node = port.get_node()
    return node.input_value(0).get_node() if node.get_type_name() == "Result" else node


def openvino(path: Path) -> Probe:
    import openvino as ov

    core = ov.Core()
    m = core.read_model(str(path))
    ports = [op.output(0) for op in m.get_ordered_ops()
             if op.get_type_name() not in ("Constant", "Parameter", "Result", "Convert", "ShapeOf")
             and op.get_output_size() == 1 and op.output(0).get_element_type().is_real()]
    m.add_outputs(ports)
    names = [f"{_producer(o).get_friendly_name()}#{i}" for i, o in enumerate(m.outputs)]
    shape = [d.get_length() for d in list(m.inputs[0].get_partial_shape())[1:]]
    compiled: dict[int, Any] = {}

    def run(x: np.ndarray) -> dict[str, np.ndarray]:
        if x.shape[0] not in compiled:
            m.reshape([x.shape[0], *shape])
            cm = core.compile_model(m, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
            compiled[x.shape[0]] = (cm, cm.create_infer_request())
        cm, request = compiled[x.shape[0]]
        request.infer({0: x})  # read back by index: looking 250 outputs up by port took ~0.5 s on ResNet-50
        return {name: np.array(request.get_output_tensor(i).data, np.float32) for i, name in enumerate(names)}

    return run
