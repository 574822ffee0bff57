"""resnet-deploy: convert, int8-quantise and package a Keras ResNet for TFLite, ONNX and OpenVINO,
and prove per backend that the artifact still computes what Keras computes.

The API is one function per command (`export`, `parity`, `bench`, `diagnose`, `package`,
`deploy`, `gate`, `report`, `verify`), their requests and `ModelRef`. Importing this package is
cheap: each name loads on first use, and TensorFlow, ONNX Runtime and OpenVINO load inside the
target that needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    **{
        name: "resnet_deploy.api"
        for name in ("export", "parity", "bench", "diagnose", "package", "deploy", "gate", "report", "verify")
    },
    **{
        name: "resnet_deploy.requests"
        for name in (
            "ExportRequest",
            "ParityRequest",
            "BenchRequest",
            "DiagnoseRequest",
            "PackageRequest",
            "DeployRequest",
            "GateRequest",
            "ReportRequest",
            "ArtifactOptions",
        )
    },
    "ModelRef": "resnet_deploy.models.source",
    "Budget": "resnet_deploy.quantize.budget",
}
__all__ = [
    "__version__",
    "export",
    "parity",
    "bench",
    "diagnose",
    "package",
    "deploy",
    "gate",
    "report",
    "verify",
    "ExportRequest",
    "ParityRequest",
    "BenchRequest",
    "DiagnoseRequest",
    "PackageRequest",
    "DeployRequest",
    "GateRequest",
    "ReportRequest",
    "ArtifactOptions",
    "ModelRef",
    "Budget",
]

if TYPE_CHECKING:
    from resnet_deploy.api import bench, deploy, diagnose, export, gate, package, parity, report, verify
    from resnet_deploy.models.source import ModelRef
    from resnet_deploy.quantize.budget import Budget
    from resnet_deploy.requests import (
        ArtifactOptions,
        BenchRequest,
        DeployRequest,
        DiagnoseRequest,
        ExportRequest,
        GateRequest,
        PackageRequest,
        ParityRequest,
        ReportRequest,
    )


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'resnet_deploy' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
