"""Representative data: one re-readable, hashed CalibrationSet feeds every quantizer. The names
load on first use, so reading the preprocessing presets does not load the data sources."""

from __future__ import annotations

from resnet_deploy.lazy import public

_WHERE = {"CalibrationSet": "dataset", "from_spec": "dataset", "PreprocessSpec": "preprocess"}
__all__ = list(_WHERE)


__getattr__, __dir__ = public(__name__, _WHERE)
