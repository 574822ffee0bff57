"""Representative data: one re-readable, hashed CalibrationSet feeds every quantizer. The names
load on first use, so reading the preprocessing presets does not load the data sources."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from resnet_deploy.calibration.dataset import CalibrationSet, from_spec
    from resnet_deploy.calibration.preprocess import PreprocessSpec

__all__ = ["CalibrationSet", "PreprocessSpec", "from_spec"]
_WHERE = {"CalibrationSet": "dataset", "from_spec": "dataset", "PreprocessSpec": "preprocess"}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'resnet_deploy.calibration' has no attribute {name!r}")
    return getattr(importlib.import_module(f"resnet_deploy.calibration.{_WHERE[name]}"), name)
