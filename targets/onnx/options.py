"""ONNX's own export options (Target.own_options): the CLI's flags and the manifest read them here."""

from __future__ import annotations

import enum

from resnet_deploy.config import Option


class OnnxFormat(str, enum.Enum):
    """ONNX Runtime int8 format and activation/weight types; auto picks for the device
    (choose_quant_format in targets/onnx/__init__.py)."""

    AUTO = "auto"
    QDQ_U8S8 = "qdq-u8s8"
    QDQ_S8S8 = "qdq-s8s8"
    QOPERATOR_U8S8 = "qoperator-u8s8"


ONNX_FORMAT = Option(
    "onnx_format",
    OnnxFormat,
    OnnxFormat.AUTO,
    "ONNX int8 format: auto (fastest for the device), qdq-u8s8, qdq-s8s8, qoperator-u8s8",
)

OPTIONS = (ONNX_FORMAT,)
