"""Where int8 loses accuracy and what to do about it: diagnose per Keras layer, the accuracy budget
that drives export, and which backend ops keep a layer in float."""

from resnet_deploy.lazy import public

_WHERE = {
    "run_diagnose": "diagnose_run",
    "diagnose_backend": "diagnose",
    "Budget": "budget",
    "export_within": "budget",
    "float_nodes": "fallback",
}
__all__ = list(_WHERE)
__getattr__, __dir__ = public(__name__, _WHERE)
