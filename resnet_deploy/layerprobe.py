"""Every intermediate tensor of an artifact, exposed with each runtime's own means: TFLite's
preserve-all-tensors interpreter, extra ONNX graph outputs, OpenVINO's add_outputs. Integer
tensors are dequantized with their own scale and zero point, so all are float32 and comparable."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from resnet_deploy.portable.quantio import dequantize, quantize


def tflite(path: Path, x: np.ndarray) -> dict[str, np.ndarray]:
    from targets.tflite import load_interpreter_class

    from resnet_deploy._tf import captured_output

    cls, _ = load_interpreter_class()
    with captured_output():
        interp = cls(model_path=str(path), experimental_preserve_all_tensors=True)
        interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    scale, zp = inp["quantization"]
    interp.set_tensor(inp["index"], quantize(x, scale, zp, inp["dtype"]))
    interp.invoke()
    outs = {}
    for op in interp._get_ops_details():  # noqa: SLF001 - the only way to list op outputs
        for idx in op["outputs"]:
            d = interp._get_tensor_details(idx, 0)  # noqa: SLF001
            s, z = d["quantization"]
            outs[f"{d['name']}#{idx}"] = dequantize(interp.get_tensor(idx), s, z)
    return outs


def onnx(path: Path, x: np.ndarray) -> dict[str, np.ndarray]:
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
    names = [o.name for o in sess.get_outputs()]
    values = sess.run(names, {sess.get_inputs()[0].name: x})
    return {n: np.asarray(v, np.float32) for n, v in zip(names, values) if np.asarray(v).dtype.kind == "f"}


def openvino(path: Path, x: np.ndarray) -> dict[str, np.ndarray]:
    import openvino as ov

    core = ov.Core()
    m = core.read_model(str(path))
    ports = [op.output(0) for op in m.get_ordered_ops()
             if op.get_type_name() not in ("Constant", "Parameter", "Result", "Convert", "ShapeOf")
             and op.get_output_size() == 1 and op.output(0).get_element_type().is_real()]
    m.add_outputs(ports)
    def producer(o):  # an output port's op (not the Result that add_outputs puts after it)
        node = o.get_node()
        return node.input_value(0).get_node() if node.get_type_name() == "Result" else node

    names = [f"{producer(o).get_friendly_name()}#{i}" for i, o in enumerate(m.outputs)]
    m.reshape([x.shape[0], *[d.get_length() for d in list(m.inputs[0].get_partial_shape())[1:]]])
    compiled = core.compile_model(m, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    res = compiled.create_infer_request().infer({0: x})
    return {name: np.asarray(res[compiled.outputs[i]], np.float32) for i, name in enumerate(names)}
