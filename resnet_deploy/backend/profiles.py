"""Device profiles: what an artifact depends on about the device that will run it, decided for
that device and not for the machine that builds it (`--device host|x86-vnni|x86-avx2|arm64` on
export and package). Each choice is recorded in the manifest with its reason; the self-test and
`deploy` check a device against the profile (portable/device.py).

What depends on the device today:
- ONNX Runtime's int8 format: U8S8 QDQ on x86 (S8S8 leaves the residual convs in fp32 there),
  with reduce_range (7-bit weights) when the CPU has no VNNI (U8S8 through pmaddubsw can
  saturate); S8S8 on ARM, where sdot makes it the fast pair (targets/onnx/__init__.py measures x86).
- TFLite's int8 I/O: int8 on every profile (what NPUs and microcontrollers take; XNNPACK runs it
  on x86 and ARM alike), recorded so a profile can change it with a reason.
- OpenVINO: the same IR everywhere; on arm64 its CPU plugin runs through ARM Compute Library.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from resnet_deploy.errors import InputError
from resnet_deploy.portable import device


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    arch: str  # as portable.device.facts() names it: x86_64 or aarch64
    vnni: bool | None  # None: not an x86 question
    description: str

    def record(self, reason: str) -> dict:
        """The manifest's `device_profile` section."""
        return {**asdict(self), "reason": reason, "choices": choices(self)}


PROFILES = {
    "x86-vnni": DeviceProfile("x86-vnni", "x86_64", True, "x86-64 with VNNI (AVX512-VNNI, AVX-VNNI or AMX-INT8)"),
    "x86-avx2": DeviceProfile("x86-avx2", "x86_64", False, "x86-64 with AVX2 and no VNNI"),
    "arm64": DeviceProfile("arm64", "aarch64", None, "64-bit ARM (aarch64): phones, boards, Graviton"),
}
DEFAULT_DEVICE = "host"


def resolve(name: str | None) -> tuple[DeviceProfile, str]:
    """The profile for --device NAME ("host": this machine's), and why."""
    name = (name or DEFAULT_DEVICE).strip().lower()
    if name in PROFILES:
        return PROFILES[name], "given with --device"
    if name != DEFAULT_DEVICE:
        raise InputError(f"Unrecognized device={name!r}. Supported: host, {', '.join(PROFILES)}.")
    facts = device.facts()
    if facts["arch"] == "aarch64":
        return PROFILES["arm64"], "--device host: this machine is aarch64"
    if facts["arch"] == "x86_64":
        key = "x86-vnni" if facts["vnni"] else "x86-avx2"
        return PROFILES[key], f"--device host: this machine is x86-64 {'with' if facts['vnni'] else 'without'} VNNI"
    raise InputError(
        f"this machine is {facts['arch']}, which no device profile describes; "
        f"pass --device {'|'.join(PROFILES)} for the device that will run the model."
    )


def ort_int8(profile: DeviceProfile) -> tuple[str, bool, str]:
    """(activation type, reduce_range, reason) of ORT's QDQ int8 for this device."""
    if profile.arch == "aarch64":
        return "int8", False, "arm64: S8S8 is ORT's fast pair on ARM (sdot)"
    if profile.vnni:
        return (
            "uint8",
            False,
            "x86 with VNNI: U8S8 fuses every conv (S8S8 leaves residual convs in fp32); full 8-bit weights",
        )
    return (
        "uint8",
        True,
        (
            "x86 without VNNI: U8S8 fuses every conv (S8S8 leaves residual convs in fp32); reduce_range "
            "(7-bit weights) avoids pmaddubsw saturation"
        ),
    )


def bf16(profile: DeviceProfile) -> tuple[bool, str]:
    """(whether bf16 is offered for this device, reason)."""
    if profile.vnni:
        return True, (
            "x86 with VNNI: bf16 where the CPU also has AVX512-BF16 or AMX-BF16 (Zen 4/5, Cooper Lake, "
            "Sapphire Rapids and later); the self-test checks the device's flags"
        )
    if profile.arch == "aarch64":
        return False, "arm64: OpenVINO's bf16 on ARM is not measured here; use fp32, fp16 or int8"
    return False, "x86 without VNNI: no CPU of this kind has AVX512-BF16 or AMX"


def choices(profile: DeviceProfile) -> dict:
    act, reduce_range, why = ort_int8(profile)
    offered, bf16_why = bf16(profile)
    return {
        "bf16": {"offered": offered, "reason": bf16_why},
        "onnx_int8": {
            "format": "qdq",
            "activations": act,
            "weights": "int8",
            "reduce_range": reduce_range,
            "reason": why,
        },
        "tflite_io_dtype": {
            "value": "int8",
            "reason": "int8 I/O on every profile: what NPUs and microcontrollers take; XNNPACK runs it on x86 and ARM",
        },
    }
