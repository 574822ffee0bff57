"""Device-like Python environments for the bundle tests: a virtualenv per runtime holding only
numpy and that runtime (no TensorFlow, no resnet-deploy).

    python -m tests.devices          # create them all (what .ci/run does before pytest)

They live in $RESNET_DEPLOY_DEVICE_VENVS or ~/.cache/resnet-deploy/device-venvs and are reused
only while they hold exactly the pinned requirements (recorded in each venv's `.complete`).
Runtimes are pinned to the versions installed on the host, so pip takes them from its cache.
tflite-runtime 2.14 is the last release: it needs numpy<2 and a Python of 3.9 to 3.11, so its
venv is made with such an interpreter (this one, or python3.11/3.10/3.9 on PATH).
"""

from __future__ import annotations

import os
import shutil
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
# the Pythons a device's runtime has wheels for (None: any)
PYTHONS: dict[str, tuple[int, int] | None] = {"tflite-runtime": (3, 11)}

# what each device's Python must NOT be able to import: proves it is device-like
FORBIDDEN = ["tensorflow", "keras", "resnet_deploy", "ai_edge_litert"]


def root() -> Path:
    return Path(os.environ.get("RESNET_DEPLOY_DEVICE_VENVS", Path.home() / ".cache" / "resnet-deploy" / "device-venvs"))


def python_of(name: str) -> Path:
    return root() / name / "bin" / "python"


def base_python(name: str) -> str:
    """An interpreter the device's runtime has wheels for."""
    newest = PYTHONS.get(name)
    if newest is None or sys.version_info[:2] <= newest:
        return sys.executable
    for minor in range(newest[1], 8, -1):
        found = shutil.which(f"python3.{minor}")
        if found:
            return found
    raise RuntimeError(
        f"the {name} device needs Python <= {newest[0]}.{newest[1]} (no wheels for "
        f"{sys.version_info[0]}.{sys.version_info[1]}); install python3.{newest[1]}."
    )


def record(name: str) -> str:
    """What the venv must hold; a venv made for other pins is rebuilt."""
    return " ".join(DEVICES[name]) + "\n"


def ensure(name: str) -> Path:
    """Create (once) the venv for a device and return its python."""
    py = python_of(name)
    marker = root() / name / ".complete"
    if marker.exists() and py.exists() and marker.read_text() == record(name):
        return py
    venv = root() / name
    subprocess.run([base_python(name), "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", *DEVICES[name]], check=True)
    marker.write_text(record(name))
    return py


if __name__ == "__main__":
    from tests.support import arm_device

    for device in DEVICES:
        print(f"{device}: {ensure(device)}")
    arm_device.main()
