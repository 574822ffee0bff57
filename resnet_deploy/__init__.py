"""resnet-deploy: convert, int8-quantise and package a Keras ResNet for TFLite, ONNX and OpenVINO,
and prove per backend that the artifact still computes what Keras computes.

The API is one function per command (`export`, `parity`, `bench`, `diagnose`, `package`,
`deploy`, `gate`, `report`, `verify`, `matrix`), their requests and `ModelRef`. Importing this package is
cheap: each name loads on first use, and TensorFlow, ONNX Runtime and OpenVINO load inside the
target that needs them.
"""

from __future__ import annotations

from resnet_deploy.lazy import public

__version__ = "0.1.0"

_LAZY = {
    **{
        name: "api"
        for name in ("export", "parity", "bench", "diagnose", "package", "deploy", "gate", "report", "verify", "matrix")
    },
    **{
        name: "requests"
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
    "MatrixRequest": "evaluate.matrix",
    "ModelRef": "models.source",
    "Budget": "quantize.budget",
}
__all__ = ["__version__", *_LAZY]

__getattr__, __dir__ = public(__name__, _LAZY)
