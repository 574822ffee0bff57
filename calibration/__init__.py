"""Representative data: one re-readable, hashed CalibrationSet feeds every quantizer."""

from resnet_deploy.calibration.dataset import CalibrationSet, from_spec
from resnet_deploy.calibration.preprocess import PreprocessSpec

__all__ = ["CalibrationSet", "PreprocessSpec", "from_spec"]
