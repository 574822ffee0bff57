"""OpenVINO int8 from the ONNX int8 model of the same export, instead of a second calibration
pass (NNCF's).

OpenVINO's ONNX frontend reads each QuantizeLinear/DequantizeLinear pair as a FakeQuantize, the
form NNCF's own output has, and its CPU plugin runs the same int8 kernels on it. So when one
export makes ONNX int8 (QDQ) and OpenVINO int8 on the same calibration set, the OpenVINO IR is
ov.convert_model of that ONNX model: one calibration pass (ORT's) serves both, and neither
convert_model on the Keras model nor NNCF runs. Measured (2 vCPUs AMD EPYC Zen 3, AVX2, no
VNNI; README "Export time and memory"): ResNet-50 @224 int8 p50 30.4 ms from the ONNX model vs
31.9 ms from NNCF, both 56 int8 ops and 1 float op; digits parity SQNR 23.4 dB vs NNCF's
21.1 dB, accuracy 99.78% both; the OpenVINO step of `export --target all` 38-46 s -> 1.5-2 s.

The IR inherits the ONNX model's choices, and so its device profile: on the Zen 3 (AVX2) an ONNX
model with full 8-bit weights (the x86-vnni profile's) loses to saturation in OpenVINO as in ORT
(digits SQNR 10.1 dB): the profile's reduce_range is what keeps it right (profiles.py).

So it is taken only where that profile is an x86 one (x86-avx2, x86-vnni: the CPUs OpenVINO's IR
is for) and chose the format itself. Not taken (NNCF runs, and the manifest's quantization.why
says which): --openvino-int8 nncf; an --onnx-format the user chose for ONNX (x86 U8S8 or S8S8
without reduce_range saturates on AVX2); the arm64 profile (S8S8 for ARM's sdot: on the Zen 3
OpenVINO ran it at 10.3 dB against Keras on digits, NNCF's IR passes); layers kept in float (an
accuracy budget searches each backend on its own); no ONNX int8 in the export, or it failed.
"""

from __future__ import annotations

import io
from typing import Any, Sequence

from resnet_deploy.backend.exchange import Int8Onnx
from resnet_deploy.config import ExportConfig, Precision
from resnet_deploy.targets.onnx.options import ONNX_FORMAT, OnnxFormat
from resnet_deploy.targets.openvino.options import OPENVINO_INT8, OpenVinoInt8

# The ONNX quantization record's fields that describe what the OpenVINO IR computes too.
INHERITED = (
    "format",
    "activations",
    "weights",
    "name",
    "per_channel",
    "reduce_range",
    "calibration_method",
    "calibration_samples",
    "reason",
)
WHY = (
    "one calibration pass for ONNX and OpenVINO: OpenVINO reads the ONNX int8 model's Q/DQ pairs as "
    "FakeQuantize (targets/openvino/from_onnx.py)"
)


def why_not(config: ExportConfig) -> str | None:
    """Why this config's OpenVINO int8 cannot come from an ONNX int8 model, or None."""
    from resnet_deploy.backend.profiles import resolve

    if config.precision is not Precision.INT8:
        return f"{config.precision.value} is not int8"
    if config.option(OPENVINO_INT8) is OpenVinoInt8.NNCF:
        return "--openvino-int8 nncf"
    if config.quant.float_nodes:
        return "layers kept in float are chosen per backend"
    if config.option(ONNX_FORMAT) is not OnnxFormat.AUTO:
        return (
            f"--onnx-format {config.option(ONNX_FORMAT).value} is the ONNX model's, not a device profile's "
            "choice for OpenVINO"
        )
    profile, _ = resolve(config.device)
    if profile.arch != "x86_64":
        return f"the ONNX int8 model is made for {profile.name} ({profile.arch}); OpenVINO's is for x86"
    return None  # every x86 profile's ONNX int8 is QDQ, which OpenVINO reads (targets/onnx/__init__.py)


def takes(config: ExportConfig, names: Sequence[str]) -> bool:
    """Whether an OpenVINO int8 export among `names` (every target of one export) takes the ONNX one's model."""
    return "onnx" in names and why_not(config) is None


def convert(ov: Any, offered: Int8Onnx) -> tuple[Any, dict]:
    """The OpenVINO model of the ONNX int8 model, and its quantization record."""
    ov_model = ov.convert_model(io.BytesIO(offered.data))
    q = offered.quantization
    record = {
        "tool": "onnxruntime, read by OpenVINO",
        "from_onnx_sha256": offered.sha256,
        **{k: q[k] for k in INHERITED if k in q},
        "io_dtype": "float32",
        "float_nodes": [],
        "why": WHY,
    }
    return ov_model, record
