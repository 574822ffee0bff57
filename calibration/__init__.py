"""Representative data: one re-readable, hashed CalibrationSet feeds every quantizer."""
from calibration.dataset import CalibrationSet, from_spec
from calibration.preprocess import PreprocessSpec

__all__ = ["CalibrationSet", "PreprocessSpec", "from_spec"]
