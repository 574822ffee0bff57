"""Representative data: one re-readable, hashed CalibrationSet feeds every quantizer. The names
load on first use, so reading the preprocessing presets does not load the data sources."""

from __future__ import annotations

from typing import TYPE_CHECKING

from resnet_deploy.lazy import public

if TYPE_CHECKING:
    from resnet_deploy.calibration.dataset import CalibrationSet, from_spec
    from resnet_deploy.calibration.preprocess import PreprocessSpec

__all__ = ["CalibrationSet", "PreprocessSpec", "from_spec"]
_WHERE = {"CalibrationSet": "dataset", "from_spec": "dataset", "PreprocessSpec": "preprocess"}


__getattr__, __dir__ = public(__name__, _WHERE)
