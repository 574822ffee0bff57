"""Giving memory back between export steps.

A converter's garbage (TensorFlow graphs, protobuf arenas, numpy copies of the weights) is freed by
Python but stays in the C allocator's arenas, so the next target's peak lands on top of the last
one's: measured on ResNet-50 @224, `export --target all` peaked at 3.3 GB with the ONNX step alone
at 2.9 GB. Between targets, collect cycles and ask glibc to return free pages to the system."""
from __future__ import annotations

import ctypes
import gc


def release() -> None:
    """Collect garbage and return the allocator's free memory to the OS (glibc; a no-op elsewhere)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
