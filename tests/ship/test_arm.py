"""Bundles built for arm64 self-test on an aarch64 device: Debian's arm64 Python under
qemu-aarch64-static with only numpy and one runtime (tests/support/arm_device.py), locally and over SSH.
The device really is aarch64: its platform.machine(), the probe and the self-test say so."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.support import arm_device, sshd
from tests.support.cli import QUICK
from tests.support.cli import run_cli

pytestmark = pytest.mark.skipif(
    not arm_device.available(), reason="no emulated aarch64 device (.ci/run installs qemu-user-static and builds it)"
)


def _selftest(device: str, bundle) -> tuple[int, dict, str]:
    py = arm_device.ensure(device)
    run = subprocess.run([str(py), str(bundle / "selftest.py"), *QUICK], capture_output=True, text=True, timeout=600)
    return run.returncode, json.loads(run.stdout.strip().splitlines()[-1]), run.stderr


@pytest.mark.parametrize(
    "device, bundle, runtime",
    [
        ("aarch64-litert", "digits-tflite-int8", "ai_edge_litert"),
        ("aarch64-litert", "digits-tflite-fp32", "ai_edge_litert"),
        ("aarch64-tflite-runtime", "digits-tflite-int8", "tflite_runtime"),
        ("aarch64-tflite-runtime", "digits-tflite-fp32", "tflite_runtime"),
        ("aarch64-onnxruntime", "digits-onnx-int8", "onnxruntime"),
        ("aarch64-openvino", "digits-openvino-int8", "openvino"),
    ],
)
def test_arm64_bundles_selftest_on_an_aarch64_device(arm_bundles, device, bundle, runtime):
    code, res, err = _selftest(device, arm_bundles / bundle)
    assert code == 0, err
    assert res["machine"] == "aarch64" and res["ok"] and res["runtime"]["runtime"] == runtime, res
    assert res["profile"] == {**res["profile"], "profile": "arm64", "fits": True}
    assert res["profile"]["device"]["arch"] == "aarch64"
    assert res["metrics"]["top1_agreement"] >= 0.95 and res["latency"]["p50"] > 0


def test_the_onnx_arm64_bundle_is_s8s8(arm_bundles):
    manifest = json.loads((arm_bundles / "digits-onnx-int8" / "manifest.json").read_text())
    assert manifest["quantization"]["name"] == "qdq-s8s8" and manifest["device_profile"]["name"] == "arm64"


def test_an_x86_bundle_is_refused_by_the_aarch64_device(bundles):
    code, res, err = _selftest("aarch64-litert", __import__("pathlib").Path(bundles["tflite"]["bundle"]))
    assert code == 8 and res["machine"] == "aarch64" and not res["ok"], err
    assert res["profile"]["fits"] is False and "this device is aarch64" in res["profile"]["why"]


@pytest.mark.skipif(not sshd.available(), reason="openssh-server is not installed (.ci/run installs it)")
def test_ssh_deploy_to_an_aarch64_device(arm_bundles, bundles, tmp_path, capsys):
    """The remote Python is the emulated aarch64 one: deploy's probe sees aarch64, takes the
    arm64 bundle and refuses the x86 one before copying it."""
    (tmp_path / "sshd").mkdir()
    server = sshd.InetdSshd(tmp_path / "sshd")
    py = str(arm_device.ensure("aarch64-litert"))
    try:
        remote = tmp_path / "board"
        code, out, err = run_cli(
            capsys,
            "deploy",
            str(arm_bundles / "digits-tflite-int8.tar.gz"),
            "--to",
            server.url(remote),
            "--python",
            py,
            *server.ssh_args(),
            "--json",
            *QUICK,
        )
        assert code == 0, err
        res = json.loads(out)
        assert res["probe"]["arch"] == "aarch64" and res["machine"] == "aarch64" and res["ok"]
        code, _, err = run_cli(
            capsys,
            "deploy",
            bundles["tflite"]["tarball"],
            "--to",
            server.url(remote / "x86"),
            "--python",
            py,
            *server.ssh_args(),
            *QUICK,
        )
        assert code == 8 and "but this device is aarch64" in err and "nothing was copied" in err, err
        assert not (remote / "x86").exists() or not any((remote / "x86").iterdir())
    finally:
        server.close()
