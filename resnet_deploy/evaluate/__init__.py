"""Whether an artifact still computes what Keras computes: parity against a saved or fresh
reference, the one tolerance table, and the CI gate."""

from resnet_deploy.lazy import public

_WHERE = {
    "run_parity": "parity_run",
    "ParityReport": "parity",
    "Reference": "reference",
    "make_reference": "reference",
    "TOLERANCES": "tolerances",
    "tolerance_for": "tolerances",
    "run_gate": "gate",
}
__all__ = list(_WHERE)
__getattr__, __dir__ = public(__name__, _WHERE)
