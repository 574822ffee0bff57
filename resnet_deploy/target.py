"""Target base and registry. Built-in targets register through the same register() a plugin
would; they are named by import path so that nothing heavy loads until a target is used."""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from resnet_deploy.config import ExportConfig, Precision
from resnet_deploy.errors import InputError

if TYPE_CHECKING:
    from calibration.dataset import CalibrationSet
    from resnet_deploy.artifact import Artifact
    from resnet_deploy.runner import Runner


class Target:
    """One deployment format. Small on purpose: export() and runner()."""

    name: str = ""
    precisions: tuple[Precision, ...] = ()
    description: str = ""

    def check_config(self, config: ExportConfig) -> None:
        """Reject combinations this target cannot build, before any work starts."""
        if config.precision not in self.precisions:
            supported = ", ".join(p.value for p in self.precisions)
            raise InputError(f"Target {self.name!r} does not support precision={config.precision.value!r}. Supported: {supported}.")

    def export(self, model: Any, out_dir: Path, config: ExportConfig,
               calib: "CalibrationSet | None", progress: Any = None) -> "Artifact":
        """Write the artifact's files into out_dir (a fresh staging dir) and describe them."""
        raise NotImplementedError

    def runner(self, artifact: "Artifact", threads: int | None = None) -> "Runner":
        """A Runner that executes the artifact with this target's runtime."""
        raise NotImplementedError

    def tool_versions(self) -> dict[str, str]:
        """Versions of the converters and runtimes this target uses, for manifests."""
        return {}


_REGISTRY: dict[str, str | Callable[[], Target]] = {}


def register(name: str, factory: str | Callable[[], Target]) -> None:
    """Register a target: a zero-arg factory, or "module:Class" imported on first use."""
    _REGISTRY[name] = factory


def available_targets() -> list[str]:
    return list(_REGISTRY)


def get_target(name: str) -> Target:
    """Instantiate a registered target by name."""
    factory = _REGISTRY.get(name)
    if factory is None:
        raise InputError(f"Unrecognized target={name!r}. Supported targets are: {', '.join(_REGISTRY)} (or all).")
    if isinstance(factory, str):
        module, _, cls = factory.partition(":")
        return getattr(importlib.import_module(module), cls)()
    return factory()


def parse_targets(value: str) -> list[str]:
    """'tflite', 'tflite,onnx' or 'all' -> validated list of target names."""
    names = [v.strip() for v in str(value).split(",") if v.strip()]
    if not names:
        raise InputError("No target given; pass --target tflite|onnx|openvino|all.")
    if names == ["all"]:
        return available_targets()
    for n in names:
        if n not in _REGISTRY:
            raise InputError(f"Unrecognized target={n!r}. Supported targets are: {', '.join(_REGISTRY)} (or all).")
    return names


register("tflite", "targets.tflite:TFLiteTarget")
register("onnx", "targets.onnx:OnnxTarget")
register("openvino", "targets.openvino:OpenVINOTarget")
