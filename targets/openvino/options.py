"""OpenVINO's own export options (Target.own_options): the CLI's flags and the manifest read them here."""

from __future__ import annotations

import enum

from resnet_deploy.config import Option


class OpenVinoInt8(str, enum.Enum):
    """Where OpenVINO's int8 comes from (targets/openvino/from_onnx.py)."""

    AUTO = "auto"  # the same export's ONNX int8 (QDQ) model when there is one (one calibration pass), else NNCF
    NNCF = "nncf"  # always NNCF's own calibration


OPENVINO_INT8 = Option(
    "openvino_int8",
    OpenVinoInt8,
    OpenVinoInt8.AUTO,
    "OpenVINO int8 from: auto (the same export's ONNX int8 model when there is one: one calibration "
    "pass; else NNCF) or nncf",
)

OPTIONS = (OPENVINO_INT8,)
