"""Keras outputs and inputs for a model under test."""

from __future__ import annotations

import numpy as np


def keras_outputs(model, x: np.ndarray) -> np.ndarray:
    from resnet_deploy.backend.runner import KerasRunner

    with KerasRunner(model) as r:
        return r.predict(x)


def random_inputs(model, n: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, *model.input_shape[1:]), dtype=np.float32)
