"""Which samples a set holds, by fingerprint: calibration, validation and parity data must stay
disjoint, and each artifact records the fingerprints of the samples it was made with."""

from __future__ import annotations

import hashlib

import numpy as np

from resnet_deploy.errors import InputError


def sample_fingerprints(x: np.ndarray) -> list[str]:
    """One short sha256 per sample (its float32 bytes): what overlap checks compare."""
    return [hashlib.sha256(np.ascontiguousarray(s, "<f4").tobytes()).hexdigest()[:16] for s in x]


def check_disjoint(x: np.ndarray | list[str], recorded: dict[str, list[str]], what: str) -> None:
    """Refuse samples (or their fingerprints) that are also in a recorded set
    ({"calibration": [...], "validation": [...]})."""
    mine = set(x) if isinstance(x, list) else set(sample_fingerprints(x))
    for name, prints in recorded.items():
        shared = mine & set(prints)
        if shared:
            raise InputError(
                f"{len(shared)} of the {what} samples are also {name} samples of this artifact; "
                f"pass {what} data that was not used for {name} (another split or folder)."
            )
