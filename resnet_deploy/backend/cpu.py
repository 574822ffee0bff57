"""CPU features that change which kernels a runtime uses (and so its speed and numerics)."""

from __future__ import annotations

import platform
from functools import lru_cache
from pathlib import Path

from resnet_deploy.portable import device

FEATURES = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    return frozenset(device.cpu_flags())


def cpu_info() -> dict:
    """Architecture, model name and the features that matter, for manifests and reports."""
    name = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    flags = cpu_flags()
    return {"arch": platform.machine(), "model": name, "features": {f: f in flags for f in FEATURES}}


def is_x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")


def has_vnni() -> bool:
    return bool(set(device.VNNI_FLAGS) & cpu_flags())
