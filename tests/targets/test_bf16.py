"""bf16 where the CPU computes it: OpenVINO runs it when asked and reads it back; the targets that
cannot compute it, the device profiles that lack it and the CPUs without it refuse in one line.
Both sides run on every CPU: the missing feature is simulated where the CPU has it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from resnet_deploy.portable import device
from tests.support.cli import QUICK, run_cli

HOST = device.facts()
NO_BF16 = "fpu sse2 avx2 avx512f avx512_vnni"  # a VNNI CPU without AVX512-BF16 (Ice Lake, Zen 3)


def _cpuinfo(tmp_path, flags: str):
    p = tmp_path / "cpuinfo"
    p.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    return str(p)


@pytest.mark.parametrize(
    "args, said",
    [
        (["--target", "tflite"], "XNNPACK has no bf16 convolutions"),
        (["--target", "onnx"], "NOT_IMPLEMENTED"),
        (["--target", "openvino", "--device", "x86-avx2"], "not offered for --device x86-avx2"),
        (["--target", "openvino", "--device", "arm64"], "not offered for --device arm64"),
    ],
)
def test_where_bf16_is_not_computed_it_is_refused_with_the_reason(tmp_path, capsys, args, said):
    code, _, err = run_cli(capsys, "export", "--precision", "bf16", *args, "--out", str(tmp_path))
    assert code == 2 and err.count("error:") == 1 and said in err, err
    assert not (tmp_path / "digits").exists()


def test_the_profile_rule_for_bf16():
    x86 = {"arch": "x86_64", "vnni": True, "bf16": True}
    bundle = {"name": "x86-vnni", "arch": "x86_64", "vnni": True, "bf16": True}
    assert device.mismatch(bundle, x86) is None
    assert "needs a CPU with AVX512-BF16 or AMX-BF16" in device.mismatch(bundle, {**x86, "bf16": False})
    assert device.mismatch(bundle, {**x86, "bf16": None}) is None  # flags unknown: not refused on a guess
    assert device.mismatch({**bundle, "bf16": None}, {**x86, "bf16": False}) is None  # an fp32 bundle


@pytest.fixture(scope="module")
def bf16_bundle(tmp_path_factory):
    from resnet_deploy.api import package

    out = tmp_path_factory.mktemp("bf16")
    made = package(
        targets="openvino", precision="bf16", n=60, out=out, **({} if HOST["bf16"] else {"device": "x86-vnni"})
    )
    assert made.ok and not made.refused, made.refused
    return out, made.packaged[0]


def test_parity_runs_bf16_and_reads_it_back_or_refuses_the_cpu(bf16_bundle, tmp_path, capsys, monkeypatch):
    out, _ = bf16_bundle
    args = ["parity", "--targets", "openvino", "--precision", "bf16", "--out", str(out), "--json"]
    code, stdout, err = run_cli(capsys, *args)
    if HOST["bf16"]:  # the real run: bf16 asked for, bf16 read back from the compiled model
        (r,) = json.loads(stdout)["results"]
        assert code == 0 and r["runtime"]["inference_precision"] == "bf16" and r["ok"], err
        assert r["metrics"]["sqnr_db"] < 60  # it really is not fp32 (fp32 gives > 100 dB)
    else:
        assert code == 4 and "needs a CPU with AVX512-BF16" in err
    monkeypatch.setenv(device.CPUINFO_ENV, _cpuinfo(tmp_path, NO_BF16))  # a CPU without it, on any machine
    code, _, err = run_cli(capsys, *args)
    assert code == 4 and err.count("error:") == 1 and "(cpu flag avx512_bf16 or amx_bf16)" in err, err


def _selftest(bundle, env: dict) -> subprocess.CompletedProcess:
    import os

    cmd = [sys.executable, os.path.join(bundle, "selftest.py"), *QUICK]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def test_the_device_selftest_refuses_a_bf16_bundle_on_a_cpu_without_bf16(bf16_bundle, tmp_path):
    import os

    _, made = bf16_bundle
    bundle = made.bundle
    with open(os.path.join(bundle, "manifest.json")) as f:
        manifest = json.load(f)
    assert manifest["device_profile"]["bf16"] is True and manifest["openvino"]["execution_precision"] == "bf16"
    env = {**os.environ, device.CPUINFO_ENV: _cpuinfo(tmp_path, NO_BF16)}
    run = _selftest(bundle, env)
    assert run.returncode == 8 and "AVX512-BF16" in run.stderr and "--allow-profile-mismatch" in run.stderr
    if HOST["bf16"]:  # on this CPU it runs, in bf16
        env.pop(device.CPUINFO_ENV)
        run = _selftest(bundle, env)
        res = json.loads(run.stdout)
        assert run.returncode == 0 and res["ok"] and res["runtime"]["inference_precision"] == "bf16", run.stderr


def test_the_gate_records_and_checks_bf16_like_every_precision(bf16_bundle, tmp_path, capsys):
    out, _ = bf16_bundle
    gate = ["gate", "--baseline", str(tmp_path / "base.json"), "--targets", "openvino", "--precision", "bf16"]
    gate += ["--n", "60", "--seconds", "0.3", "--warmup-s", "0.1", "--out", str(out)]
    code, stdout, err = run_cli(capsys, *gate, "--update-baseline")
    if not HOST["bf16"]:
        assert code == 4 and "needs a CPU with AVX512-BF16" in err
        return
    assert code == 0, err
    entry = json.loads((tmp_path / "base.json").read_text())["entries"]["openvino/bf16"]
    assert entry["accuracy"] > 0.9
    record = out / "digits" / "gate-record.json"  # its own record: digits' latency ratio is noise between runs
    code, stdout, err = run_cli(capsys, "gate", "--baseline", str(tmp_path / "base.json"), "--current", str(record))
    assert code == 0 and "openvino/bf16 | accuracy" in stdout, err
