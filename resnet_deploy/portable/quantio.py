"""Quantized I/O: float32 <-> integer tensors with the model's own scale and zero point."""
import numpy as np


def quantize(x, scale, zero_point, dtype):
    """float32 -> integer tensor (round half to even, then clip to the dtype's range)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f" or not scale:
        return x.astype(dtype, copy=False)
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale) + zero_point, info.min, info.max).astype(dtype)


def dequantize(y, scale, zero_point):
    """Integer tensor -> float32; float tensors pass through as float32."""
    if np.dtype(y.dtype).kind == "f" or not scale:
        return y.astype(np.float32, copy=False)
    return ((y.astype(np.float32) - zero_point) * scale).astype(np.float32)
