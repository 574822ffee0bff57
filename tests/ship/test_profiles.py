"""Device profiles (`--device`): the int8 formats are chosen for the device that will run the
model, not the build host, recorded with their reasons; the self-test and `deploy` refuse a
device that is not what the bundle was built for (exit 8) unless told otherwise."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from resnet_deploy.store.artifact import Artifact
from resnet_deploy.portable import device
from tests.support.artifact_facts import onnx_quant_facts
from tests.support.cli import QUICK
from tests.support.cli import run_cli

HOST = device.facts()


@pytest.fixture(scope="module")
def profiled(tmp_path_factory):
    """digits' ONNX int8 exported for each profile into one workspace per profile."""
    from cli import main

    root = tmp_path_factory.mktemp("profiles")
    for name in ("arm64", "x86-vnni", "x86-avx2", "host"):
        try:
            main(["export", "--model", "digits", "--target", "onnx", "--device", name, "--out", str(root / name)])
        except SystemExit as e:
            assert not e.code, name
    return root


@pytest.mark.parametrize(
    "name, act, reduced", [("arm64", "int8", False), ("x86-vnni", "uint8", False), ("x86-avx2", "uint8", True)]
)
def test_the_onnx_int8_format_is_the_devices_read_from_the_graph(profiled, name, act, reduced):
    a = Artifact.load(profiled / name / "digits" / "onnx" / "int8")
    facts = onnx_quant_facts(a.model_file)
    assert facts["activation_zero_point_types"] == {act}, facts
    assert (facts["max_abs_weight"] <= 64) == reduced, facts  # 7-bit weights span [-64, 64]
    prof = a.manifest["device_profile"]
    assert prof["name"] == name and prof["reason"] == "given with --device"
    assert (
        prof["choices"]["onnx_int8"]["activations"] == act and prof["choices"]["onnx_int8"]["reduce_range"] == reduced
    )
    assert a.manifest["config"]["device"] == name and name in a.manifest["quantization"]["reason"]


def test_host_means_this_machine(profiled):
    a = Artifact.load(profiled / "host" / "digits" / "onnx" / "int8")
    expected = "arm64" if HOST["arch"] == "aarch64" else "x86-vnni" if HOST["vnni"] else "x86-avx2"
    assert a.manifest["device_profile"]["name"] == expected
    assert a.manifest["device_profile"]["reason"].startswith("--device host: this machine is")


def test_an_artifact_for_another_device_is_not_reused_behind_your_back(profiled, capsys):
    code, _, err = run_cli(
        capsys,
        "parity",
        "--model",
        "digits",
        "--targets",
        "onnx",
        "--device",
        "arm64",
        "--n",
        "20",
        "--out",
        str(profiled / "x86-avx2"),
    )
    assert code == 2 and "device=x86-avx2 (asked: arm64)" in err, err


def test_an_unknown_device_is_one_line(tmp_path, capsys):
    code, _, err = run_cli(capsys, "export", "--device", "riscv", "--out", str(tmp_path))
    assert code == 2 and "Unrecognized device='riscv'. Supported: host, x86-vnni, x86-avx2, arm64" in err


@pytest.fixture(scope="module")
def foreign_bundles(tmp_path_factory):
    """TFLite int8 bundles of digits for every device profile."""
    out = tmp_path_factory.mktemp("foreign")
    from cli import main

    for name in ("arm64", "x86-vnni", "x86-avx2"):
        try:
            main(
                [
                    "package",
                    "--model",
                    "digits",
                    "--targets",
                    "tflite",
                    "--n",
                    "40",
                    "--device",
                    name,
                    "--out",
                    str(out / name),
                ]
            )
        except SystemExit as e:
            assert not e.code, name
    return {name: out / name / "bundles" / "digits-tflite-int8" for name in ("arm64", "x86-vnni", "x86-avx2")}


# CPUs the self-test is shown: this one as it is, and x86 CPUs with and without VNNI, whatever this one has
# (a copy of /proc/cpuinfo's flags line, read through RESNET_DEPLOY_CPUINFO: the same probe, other facts)
CPUS = {"this CPU": None, "x86 with VNNI": "fpu sse2 avx2 avx512f avx512_vnni", "x86 without VNNI": "fpu sse2 avx2 fma"}


def _simulated(tmp_path: Path, cpu: str) -> tuple[dict, dict]:
    """(the environment that shows the self-test this CPU, the facts it will read)."""
    import os

    env = dict(os.environ)
    env.pop(device.CPUINFO_ENV, None)
    if CPUS[cpu] is None:
        return env, HOST
    info = tmp_path / "cpuinfo"
    info.write_text(f"processor\t: 0\nflags\t\t: {CPUS[cpu]}\n")
    env[device.CPUINFO_ENV] = str(info)
    return env, {**HOST, "vnni": "avx512_vnni" in CPUS[cpu], "flags_known": True}


@pytest.mark.parametrize("cpu", list(CPUS))
@pytest.mark.parametrize("name", ["arm64", "x86-vnni", "x86-avx2"])
def test_the_selftest_runs_a_bundle_only_where_it_fits(foreign_bundles, tmp_path, name, cpu):
    """Whether a bundle fits is derived from the CPU's facts (the rule in portable/device.py), on
    this CPU and on simulated ones, so both sides of every branch run on any x86 machine: a VNNI
    bundle is refused without VNNI, an avx2 bundle runs with it, arm64 never runs on x86."""
    b = foreign_bundles[name]
    env, facts = _simulated(tmp_path, cpu)
    profile = json.loads((b / "manifest.json").read_text())["device_profile"]
    why = device.mismatch(profile, facts)
    if HOST["arch"] == "x86_64":  # the rule itself, stated independently of the code under test
        assert (why is None) == (name == "x86-avx2" or (name == "x86-vnni" and facts["vnni"] is not False)), why
    run = subprocess.run(
        [sys.executable, str(b / "selftest.py"), *QUICK], capture_output=True, text=True, timeout=300, env=env
    )
    res = json.loads(run.stdout)
    assert res["profile"]["device"]["vnni"] == facts["vnni"], res["profile"]
    if why is None:
        assert run.returncode == 0 and res["ok"] and res["profile"]["fits"], run.stderr
        return
    assert run.returncode == 8, run.stderr
    assert res["profile"]["profile"] == name and res["profile"]["fits"] is False and not res["ok"]
    assert ("aarch64" in res["profile"]["why"]) if name == "arm64" else ("VNNI" in res["profile"]["why"])
    assert run.stderr.count("error:") == 1 and "--allow-profile-mismatch" in run.stderr
    run = subprocess.run(
        [sys.executable, str(b / "selftest.py"), "--allow-profile-mismatch", *QUICK],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert run.returncode == 0, run.stderr
    res = json.loads(run.stdout)
    assert res["ok"] and res["profile"]["allowed"] is True and res["profile"]["fits"] is False


def test_deploy_refuses_before_copying_anything(foreign_bundles, tmp_path, capsys):
    dest = tmp_path / "device"
    code, _, err = run_cli(capsys, "deploy", str(foreign_bundles["arm64"]), "--to", str(dest), *QUICK)
    assert code == 8 and err.count("error:") == 1, err
    assert "built for arm64 (aarch64) but this device is" in err and "nothing was copied" in err
    assert not dest.exists() or not any(dest.iterdir())
    code, out, err = run_cli(
        capsys, "deploy", str(foreign_bundles["arm64"]), "--to", str(dest), "--allow-profile-mismatch", "--json", *QUICK
    )
    assert code == 0, err
    res = json.loads(out)
    assert res["ok"] and res["profile"]["allowed"] and res["probe"]["arch"] == HOST["arch"]


def test_deploy_over_ssh_probes_the_device_first(foreign_bundles, tmp_path, capsys):
    from tests.support import sshd

    if not sshd.available():
        pytest.skip("openssh-server is not installed (.ci/run installs it)")
    (tmp_path / "sshd").mkdir()
    server = sshd.InetdSshd(tmp_path / "sshd")
    try:
        remote = tmp_path / "remote"
        code, _, err = run_cli(
            capsys,
            "deploy",
            str(foreign_bundles["arm64"]),
            "--to",
            server.url(remote),
            "--python",
            sys.executable,
            *server.ssh_args(),
            *QUICK,
        )
        assert code == 8 and "127.0.0.1" in err and "nothing was copied" in err, err
        assert not remote.exists() or not any(remote.iterdir())
    finally:
        server.close()
