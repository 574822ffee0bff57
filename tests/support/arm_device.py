"""Emulated aarch64 devices for the bundle tests, without ARM hardware: Debian's arm64 Python run
by qemu-aarch64-static in user mode (no binfmt registration), with numpy and one runtime from
their aarch64 wheels.

    python -m tests.arm_device       # build them (tests.devices' main does; .ci/run calls it)

ROOT is Debian's arm64 python3.11 and the libraries it needs (`apt-get download`, `dpkg -x`;
.ci/run has added the arm64 architecture and installed qemu-user-static). Each device is a
folder of aarch64 wheels (`pip install --platform ... --target`) and bin/python, a wrapper that
runs the emulated interpreter on it: deploy and the self-test use it like any other Python.
Everything is cached beside tests.devices' venvs and rebuilt only when its pins change.

ai-edge-litert is pinned to 1.4.0, its newest release with an aarch64 wheel for CPython 3.11
(2.x publishes none that pip finds for manylinux 2.17-2.39 aarch64). ONNX Runtime is pinned to 1.27.0, the newest that runs under this qemu: 1.28.0 to 1.32.0 die
with SIGSEGV on the first InferenceSession (checked here, Debian 12's qemu 7.2).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.devices import _pin, root

DEBS = [
    "python3.11-minimal",
    "libpython3.11-minimal",
    "libpython3.11-stdlib",
    "libc6",
    "libexpat1",
    "zlib1g",
    "libffi8",
    "libssl3",
    "libbz2-1.0",
    "liblzma5",
    "libgcc-s1",
    "libstdc++6",
    "libsqlite3-0",
    "libncursesw6",
    "libtinfo6",
    "libreadline8",
    "libuuid1",
    "libcrypt1",
    "libnsl2",
    "libtirpc3",
    "libdb5.3",
    "libgssapi-krb5-2",
    "libkrb5-3",
    "libk5crypto3",
    "libcom-err2",
    "libkrb5support0",
    "libkeyutils1",
]
PYTHON = "3.11"  # Debian 12's
PLATFORMS = [
    "manylinux2014_aarch64",
    "manylinux_2_17_aarch64",
    "manylinux_2_28_aarch64",
    "manylinux_2_34_aarch64",
    "manylinux_2_35_aarch64",
]  # Debian 12 has glibc 2.36
DEVICES: dict[str, list[str]] = {
    "aarch64-litert": ["numpy<2.3", "ai-edge-litert==1.4.0"],
    "aarch64-tflite-runtime": ["numpy<2", "tflite-runtime==2.14.0"],
    "aarch64-onnxruntime": ["numpy<2.3", "onnxruntime==1.27.0"],
    "aarch64-openvino": ["numpy<2.3", _pin("openvino")],
}


def qemu() -> str | None:
    return shutil.which("qemu-aarch64-static")


def available() -> bool:
    """qemu and the arm64 Python root are there (.ci/run makes both)."""
    return qemu() is not None and (sysroot() / ".complete").exists()


def sysroot() -> Path:
    return root() / "aarch64-root"


def ensure_sysroot() -> Path:
    """Debian's arm64 python3.11 unpacked into a folder (apt-get download + dpkg -x)."""
    dest = sysroot()
    marker = dest / ".complete"
    if marker.exists() and marker.read_text() == " ".join(DEBS) + "\n":
        return dest
    debs = root() / "aarch64-debs"
    shutil.rmtree(dest, ignore_errors=True)
    debs.mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", "download", "-q", *(f"{d}:arm64" for d in DEBS), "media-types"], cwd=debs, check=True)
    dest.mkdir(parents=True)
    for deb in sorted(debs.glob("*.deb")):
        subprocess.run(["dpkg", "-x", str(deb), str(dest)], check=True)
    marker.write_text(" ".join(DEBS) + "\n")
    return dest


def python_of(name: str) -> Path:
    return root() / name / "bin" / "python"


def ensure(name: str) -> Path:
    """The emulated device's python wrapper (wheels installed once)."""
    py, site = python_of(name), root() / name / "site"
    marker = root() / name / ".complete"
    want = " ".join(DEVICES[name]) + "\n"
    if marker.exists() and py.exists() and marker.read_text() == want:
        return py
    shutil.rmtree(root() / name, ignore_errors=True)
    platforms = [a for p in PLATFORMS for a in ("--platform", p)]
    # --no-warn-conflicts: pip checks a --target folder against this host's packages (resnet-deploy wants
    # ai-edge-litert 2, the host's ml-dtypes wants numpy 2), which are not the emulated device's
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "--no-warn-conflicts",
            *platforms,
            "--python-version",
            PYTHON,
            "--implementation",
            "cp",
            "--only-binary=:all:",
            "--target",
            str(site),
            *DEVICES[name],
        ],
        check=True,
    )
    py.parent.mkdir(parents=True)
    py.write_text(
        f"#!/bin/sh\nexec {qemu()} -L {sysroot()} -E PYTHONPATH={site} -E PYTHONNOUSERSITE=1 "
        f'{sysroot()}/usr/bin/python{PYTHON} "$@"\n'
    )
    py.chmod(0o755)
    marker.write_text(want)
    return py


def main() -> None:
    if qemu() is None:
        print("aarch64 devices: qemu-aarch64-static is not installed (.ci/run installs qemu-user-static)")
        return
    ensure_sysroot()
    for name in DEVICES:
        print(f"{name}: {ensure(name)}")


if __name__ == "__main__":
    main()
