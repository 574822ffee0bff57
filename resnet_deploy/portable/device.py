"""What a device is (architecture, the CPU flags that decide int8 kernels) and whether a bundle's
device profile fits it. Shared by the host (profiles.py: `--device host`, `deploy`'s probe) and
the on-device self-test: numpy is not even needed here."""
import json
import os
import platform

from .constants import EXIT_PROFILE

VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # what OpenVINO's CPU plugin computes bf16 with
ARCH_NAMES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}


CPUINFO_ENV = "RESNET_DEPLOY_CPUINFO"  # read the CPU's facts from this file instead: another CPU's, to check a bundle


def cpu_flags(cpuinfo=None):
    """The CPU's feature flags (x86 "flags", ARM "Features"); empty if unknown. They come from
    /proc/cpuinfo, or from the file RESNET_DEPLOY_CPUINFO names (a copy of another device's
    /proc/cpuinfo: what this bundle would say there)."""
    cpuinfo = cpuinfo or os.environ.get(CPUINFO_ENV) or "/proc/cpuinfo"
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return sorted(set(line.split(":", 1)[1].split()))
    except OSError:
        pass
    return []


def facts():
    """This device: {"arch", "vnni", "flags_known"}."""
    flags = cpu_flags()
    arch = ARCH_NAMES.get(platform.machine().lower(), platform.machine().lower())
    return {"arch": arch, "vnni": bool(set(VNNI_FLAGS) & set(flags)) if flags else None,
            "bf16": bool(set(BF16_FLAGS) & set(flags)) if flags else None, "flags_known": bool(flags),
            "cpus": os.cpu_count(), **({"cpuinfo": os.environ[CPUINFO_ENV]} if os.environ.get(CPUINFO_ENV) else {})}


def mismatch(profile, device):
    """Why a bundle built for `profile` ({"name", "arch", "vnni"}) should not run on `device`
    (facts()), or None. A bundle without a profile (built before profiles) fits anything."""
    if not profile:
        return None
    if profile.get("arch") and device.get("arch") != profile["arch"]:
        return "the bundle was built for %s (%s) but this device is %s" % (profile.get("name"), profile["arch"],
                                                                         device.get("arch"))
    if profile.get("bf16") and device.get("bf16") is False:
        return ("the bundle runs in bf16, which needs a CPU with AVX512-BF16 or AMX-BF16, but this CPU has "
                "neither (it would run in f32, or not at all)")
    if profile.get("vnni") and device.get("vnni") is False:
        return ("the bundle was built for %s, whose int8 format needs VNNI (8-bit weights without reduce_range "
                "saturate without it), but this CPU has no VNNI" % profile.get("name"))
    return None


class ProfileMismatch(Exception):
    """The device does not fit the bundle's device profile."""

    exit_code = EXIT_PROFILE


def check_profile(profile, allow=False, device=None):
    """{"profile", "device", "fits", "why", "allowed"} for this device (or `device` facts);
    raises ProfileMismatch when it does not fit, unless `allow`."""
    device = device or facts()
    why = mismatch(profile, device)
    result = {"profile": (profile or {}).get("name"), "device": device, "fits": why is None, "why": why,
              "allowed": bool(why and allow)}
    if why and not allow:
        err = ProfileMismatch(why + "; build the bundle with --device for this device, or pass --allow-profile-mismatch")
        err.result = result
        raise err
    return result


def probe_program(profile=None, allow=False):
    """Python source that prints this device's facts and versions as one JSON line: this module's
    own code, so deploy asks the device exactly what the self-test will check. With `profile`
    (a bundle's device_profile) it then checks it there too: a device that does not fit says why
    on stderr and exits EXIT_PROFILE (fleet deploy stops that host before any copy)."""
    with open(os.path.abspath(__file__.replace(".pyc", ".py"))) as f:
        source = f.read().replace("from .constants import EXIT_PROFILE", "EXIT_PROFILE = %d" % EXIT_PROFILE)
    check = "" if profile is None else """
try:
    check_profile(_json.loads(%r), %r)
except ProfileMismatch as _e:
    _sys.stderr.write("%%s\\n" %% _e)
    _sys.exit(EXIT_PROFILE)
""" % (json.dumps(profile), bool(allow))
    return source + """
import json as _json, sys as _sys
def _version(name):
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:
        return None
_out = dict(facts(), python=platform.python_version(),
            versions={n: _version(n) for n in ("numpy", "ai-edge-litert", "tflite-runtime", "onnxruntime", "openvino")})
print(_json.dumps(_out))
""" + check
