"""Every intermediate tensor of a TFLite file, as float32 (integers dequantized with their own scale
and zero point), for diagnose and the layer map: LiteRT's preserve-all-tensors interpreter. The probe loads the file once and then
runs one batch at a time."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from resnet_deploy.portable.quantio import dequantize, quantize

from resnet_deploy.backend.target import Probe


def probe(path: Path) -> Probe:
    from resnet_deploy.targets.tflite.interpreter import load_interpreter_class

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
    outputs = [
        (idx, interp._get_tensor_details(idx, 0))  # noqa: SLF001 - the only way to list op outputs
        for op in interp._get_ops_details()
        for idx in op["outputs"]
    ]  # noqa: SLF001

    def run(x: np.ndarray) -> dict[str, np.ndarray]:
        scale, zp = inp["quantization"]
        interp.set_tensor(inp["index"], quantize(x, scale, zp, inp["dtype"]))
        interp.invoke()
        return {f"{d['name']}#{idx}": dequantize(interp.get_tensor(idx), *d["quantization"]) for idx, d in outputs}

    return run
