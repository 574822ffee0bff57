"""Export: one calibration set for every target, the schedule and its worker process, each artifact
mapped to Keras layers, given its manifest and published whole."""

from resnet_deploy.lazy import public

_WHERE = {
    "export_model": "pipeline",
    "ensure_artifact": "pipeline",
    "ensure_artifacts": "pipeline",
    "load": "pipeline",
    "Loaded": "pipeline",
    "ExportResult": "steps",
}
__all__ = list(_WHERE)
__getattr__, __dir__ = public(__name__, _WHERE)
