"""Every intermediate tensor of an OpenVINO IR, as float32 (integers dequantized with their own scale
and zero point), for diagnose and the layer map: add_outputs on every real-valued op, compiled in f32. The probe loads the file once and then
runs one batch at a time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from resnet_deploy.backend.target import Probe


def _producer(port: Any) -> Any:
    """An output port's op (not the Result that add_outputs puts after it)."""
    node = port.get_node()
    return node.input_value(0).get_node() if node.get_type_name() == "Result" else node


def _without_fake_quantize(m: Any) -> None:
    """Every FakeQuantize replaced by a clamp to its input range: activations stay float (no
    rounding), and a ReLU that the int8 model's quantizer folded into the range (ONNX Q/DQ reads
    as FakeQuantize [0, max]) is still applied. The clamp takes the FakeQuantize's name; other ops
    and their names are untouched (weights stay as int8 decompressed)."""
    import openvino.opset13 as ops

    for op in m.get_ordered_ops():
        if op.get_type_name() == "FakeQuantize":
            low, high = op.input_value(1), op.input_value(2)
            clamped = ops.minimum(ops.maximum(op.input_value(0), low), high)
            clamped.set_friendly_name(op.get_friendly_name())  # the int8 tensor of that name is this one
            for consumer in list(op.output(0).get_target_inputs()):
                consumer.replace_source_output(clamped.output(0))
    m.validate_nodes_and_infer_types()


def probe(path: Path, float_activations: bool = False) -> Probe:
    import openvino as ov

    core = ov.Core()
    m = core.read_model(str(path))
    if float_activations:
        _without_fake_quantize(m)
    ports = [
        op.output(0)
        for op in m.get_ordered_ops()
        if op.get_type_name() not in ("Constant", "Parameter", "Result", "Convert", "ShapeOf")
        and op.get_output_size() == 1
        and op.output(0).get_element_type().is_real()
    ]
    own = len(m.outputs)
    m.add_outputs(ports)
    names = [f"{_producer(o).get_friendly_name()}#{i}" for i, o in enumerate(m.outputs)]
    ordered = [*range(own, len(names)), *range(own)]  # execution order: the model's own outputs are computed last
    shape = [d.get_length() for d in list(m.inputs[0].get_partial_shape())[1:]]
    compiled: dict[int, Any] = {}

    def run(x: np.ndarray) -> dict[str, np.ndarray]:
        if x.shape[0] not in compiled:
            m.reshape([x.shape[0], *shape])
            cm = core.compile_model(m, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
            compiled[x.shape[0]] = (cm, cm.create_infer_request())
        cm, request = compiled[x.shape[0]]
        request.infer({0: x})  # read back by index: looking 250 outputs up by port took ~0.5 s on ResNet-50
        return {names[i]: np.array(request.get_output_tensor(i).data, np.float32) for i in ordered}

    return run
