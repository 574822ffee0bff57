"""Device-like Python environments for the bundle tests: a virtualenv per runtime holding only
numpy and that runtime (no TensorFlow, no resnet-deploy).

    python -m tests.devices          # create them all (what .ci/run does before pytest)

They live in $RESNET_DEPLOY_DEVICE_VENVS or ~/.cache/resnet-deploy/device-venvs and are reused.
Runtimes are pinned to the versions installed on the host, so pip takes them from its cache;
tflite-runtime 2.14 is the last release and needs numpy<2.
"""
from __future__ import annotations

import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path


def _pin(dist: str) -> str:
    try:
        return f"{dist}=={metadata.version(dist)}"
    except metadata.PackageNotFoundError:
        return dist


DEVICES: dict[str, list[str]] = {
    "tflite-runtime": ["numpy<2", "tflite-runtime==2.14.0"],
    "onnxruntime": ["numpy", _pin("onnxruntime")],
    "openvino": ["numpy", _pin("openvino")],
}

# what each device's Python must NOT be able to import: proves it is device-like
FORBIDDEN = ["tensorflow", "keras", "resnet_deploy", "ai_edge_litert"]


def root() -> Path:
    return Path(os.environ.get("RESNET_DEPLOY_DEVICE_VENVS", Path.home() / ".cache" / "resnet-deploy" / "device-venvs"))


def python_of(name: str) -> Path:
    return root() / name / "bin" / "python"


def ensure(name: str) -> Path:
    """Create (once) the venv for a device and return its python."""
    py = python_of(name)
    marker = root() / name / ".complete"
    if marker.exists() and py.exists():
        return py
    venv = root() / name
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", *DEVICES[name]], check=True)
    marker.write_text(" ".join(DEVICES[name]) + "\n")
    return py


if __name__ == "__main__":
    for device in DEVICES:
        print(f"{device}: {ensure(device)}")
