"""A package's public names, loaded on first use (PEP 562): importing a package stays cheap, and
TensorFlow, ONNX Runtime and OpenVINO load only inside the code that needs them."""

from __future__ import annotations

import importlib
from typing import Any, Callable


def public(package: str, where: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """`__getattr__, __dir__ = public(__name__, {"Name": "module", ...})` in a package's __init__."""

    def getattr_(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{where[name]}"), name)

    def dir_() -> list[str]:
        return sorted(where)

    return getattr_, dir_
