"""Bundles: packaging, self-tests in runtime-only virtualenvs, tamper and path-traversal refusal,
and deploys to a folder and over real SSH to an OpenSSH server on 127.0.0.1."""
from __future__ import annotations

import io
import json
import shutil
import socket
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from resnet_deploy import bundle, deploy
from resnet_deploy.portable.integrity import sha256_file
from resnet_deploy.requests import PackageRequest
from resnet_deploy.errors import IntegrityError
from tests import devices
from tests.test_cli import run_cli

DEVICE_OF = {"tflite": "tflite-runtime", "onnx": "onnxruntime", "openvino": "openvino"}
RUNTIME_OF = {"tflite": "tflite_runtime", "onnx": "onnxruntime", "openvino": "openvino"}
QUICK = ["--warmup-s", "0.1", "--seconds", "0.3"]


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    out = tmp_path_factory.mktemp("bundles")
    made = bundle.package(PackageRequest(targets="tflite,onnx,openvino", precision="int8", n=120, threads=2, out=out))
    return {b["target"]: b for b in made}


def _selftest(python: Path, bundle_dir: Path, cwd: Path) -> tuple[int, dict, str]:
    proc = subprocess.run([str(python), str(bundle_dir / "selftest.py"), *QUICK], capture_output=True, text=True,
                          timeout=300, cwd=cwd)
    return proc.returncode, json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


def test_package_writes_dir_tarball_and_full_manifest(bundles):
    b = bundles["tflite"]
    d = Path(b["bundle"])
    assert Path(b["tarball"]).is_file()
    m = json.loads((d / "manifest.json").read_text())
    assert m["schema_version"] == 2 and m["target"] == "tflite" and m["precision"] == "int8"
    portable = sorted(p.name for p in (Path(bundle.PORTABLE_SOURCE)).glob("*.py"))
    assert set(m["files"]) == {"model.tflite", "reference.npz", "selftest.py", *(f"rd_portable/{f}" for f in portable)}
    assert "rd_portable/metrics.py" in m["files"] and "rd_portable/__init__.py" in m["files"]
    assert m["model"]["name"] == "digits" and len(m["model"]["source_sha256"]) == 64
    assert m["inputs"][0]["quant"]["scale"] > 0 and m["inputs"][0]["layout"] == "NHWC"
    assert m["preprocessing"]["height"] == 32 and len(m["calibration"]["fingerprint_sha256"]) == 64
    assert m["tolerance"]["acc_drop_max"] == 2.0
    assert m["host"]["parity"]["accuracy"] >= 0.95 and m["host"]["latency"]["p50"] > 0
    assert {"tensorflow", "ai-edge-litert"} <= set(m["tool_versions"])
    for name, rec in m["files"].items():
        assert sha256_file(d / name) == rec["sha256"]
    with tarfile.open(b["tarball"]) as tar:
        assert sorted(tar.getnames())[0] == "digits-tflite-int8"


@pytest.mark.parametrize("target", ["tflite", "onnx", "openvino"])
def test_selftest_in_a_runtime_only_environment(target, bundles, tmp_path):
    py = devices.ensure(DEVICE_OF[target])
    for mod in devices.FORBIDDEN:  # the device really has nothing but numpy and one runtime
        assert subprocess.run([str(py), "-c", f"import {mod}"], capture_output=True, cwd=tmp_path).returncode != 0, mod
    d = Path(bundles[target]["bundle"])
    code, res, err = _selftest(py, d, tmp_path)
    assert code == 0, (res, err)
    assert res["ok"] and res["integrity"] == "ok" and not res["breaches"]
    assert res["runtime"]["runtime"] == RUNTIME_OF[target]
    assert res["samples"] == 120 and res["metrics"]["acc_drop"] <= 2.0
    assert res["latency"]["runs"] >= 50 and res["latency"]["p50"] > 0
    if target == "tflite":
        assert res["numpy"].startswith("1.") and res["runtime"]["version"] == "2.14.0"
    if target == "openvino":
        assert res["runtime"]["inference_precision"] == "f32"


def _tampered_copy(src: Path, dest: Path, file: str) -> Path:
    d = dest / src.name
    shutil.copytree(src, d)
    data = bytearray((d / file).read_bytes())
    data[len(data) // 2] ^= 0x01
    (d / file).write_bytes(bytes(data))
    return d


@pytest.mark.parametrize("file", ["model.onnx", "manifest.json"])
def test_tampered_bundle_is_refused_on_host_and_device(file, bundles, tmp_path, capsys):
    d = _tampered_copy(Path(bundles["onnx"]["bundle"]), tmp_path / "t", file)
    code, res, err = _selftest(devices.ensure("onnxruntime"), d, tmp_path)
    assert code == 6 and res["ok"] is False and "error: self-test failed" in err
    assert ("model.onnx sha256" in res["error"]) if file == "model.onnx" else ("manifest was changed" in res["error"])
    code, _, err = run_cli(capsys, "deploy", str(d), "--to", str(tmp_path / "device"))
    assert code == 6 and "bundle refused on the host" in err and "Traceback" not in err
    assert not (tmp_path / "device").exists()


def _evil_tar(path: Path, kind: str) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("b/ok.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"ok"))
        if kind == "dotdot":
            evil = tarfile.TarInfo("b/../../escape.txt")
            evil.size = 1
            tar.addfile(evil, io.BytesIO(b"x"))
        elif kind == "absolute":
            evil = tarfile.TarInfo("/tmp/escape.txt")
            evil.size = 1
            tar.addfile(evil, io.BytesIO(b"x"))
        else:
            evil = tarfile.TarInfo("b/link")
            evil.type = tarfile.SYMTYPE
            evil.linkname = "/etc/passwd"
            tar.addfile(evil)
    return path


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink"])
def test_unpacking_refuses_members_outside_the_target(kind, tmp_path, capsys):
    evil = _evil_tar(tmp_path / "evil.tar.gz", kind)
    with pytest.raises(IntegrityError, match="outside the target|link or special"):
        deploy.safe_extract(evil, tmp_path / "x")
    assert not (tmp_path / "x" / "b").exists() and not (tmp_path / "escape.txt").exists()
    code, _, err = run_cli(capsys, "deploy", str(evil), "--to", str(tmp_path / "device"))
    assert code == 6 and "refused" in err


def test_deploy_tarball_to_a_folder(bundles, tmp_path, capsys):
    code, out, err = run_cli(capsys, "deploy", bundles["tflite"]["tarball"], "--to", str(tmp_path / "device"),
                             "--python", str(devices.ensure("tflite-runtime")), *QUICK)
    assert code == 0, err
    assert "digits-tflite-int8: OK on the device (tflite_runtime 2.14.0" in out
    assert "| accuracy |" in out and "| p50 ms |" in out
    assert (tmp_path / "device" / "digits-tflite-int8" / "model.tflite").is_file()


# --------------------------------------------------------------------------------------------
# A real OpenSSH server on 127.0.0.1 with throwaway keys
# --------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    sshd_bin = shutil.which("sshd") or "/usr/sbin/sshd"
    if not Path(sshd_bin).exists():
        pytest.skip("openssh-server is not installed (.ci/run installs Debian's openssh-server)")
    d = tmp_path_factory.mktemp("sshd")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "host_key")], check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "user_key")], check=True)
    shutil.copy(d / "user_key.pub", d / "authorized_keys")
    Path("/run/sshd").mkdir(exist_ok=True)
    proc, port, log = None, 0, ""
    for _attempt in range(3):  # another process may take the free port before sshd binds it
        port = _free_port()
        (d / "sshd_config").write_text(
            f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host_key'}\nAuthorizedKeysFile {d / 'authorized_keys'}\n"
            f"PidFile {d / 'sshd.pid'}\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nSubsystem sftp internal-sftp\n")
        with open(d / "sshd.log", "w") as log_file:  # a file, not a pipe: sshd must never block on its log
            proc = subprocess.Popen([sshd_bin, "-D", "-e", "-f", str(d / "sshd_config")], stderr=log_file)
        deadline, listening = time.time() + 10, False
        while time.time() < deadline and proc.poll() is None and not listening:
            with socket.socket() as s:
                listening = s.connect_ex(("127.0.0.1", port)) == 0
            time.sleep(0.05)
        if listening and proc.poll() is None:
            break
        proc.kill()
        proc.wait(timeout=10)
        log = (d / "sshd.log").read_text()[-500:]
    else:
        pytest.fail(f"sshd did not start: {log}")
    import getpass

    yield {"port": port, "key": d / "user_key", "known_hosts": d / "known_hosts", "user": getpass.getuser()}
    proc.terminate()
    proc.wait(timeout=10)


def test_deploy_over_ssh_runs_the_selftest_on_the_device(sshd, bundles, tmp_path, capsys):
    remote = tmp_path / "remote home" / "models"  # a space: quoting for the remote shell matters
    url = f"ssh://{sshd['user']}@127.0.0.1:{sshd['port']}{remote}"
    code, out, err = run_cli(capsys, "deploy", bundles["onnx"]["tarball"], "--to", url,
                             "--python", str(devices.ensure("onnxruntime")), "-i", str(sshd["key"]),
                             "-o", f"UserKnownHostsFile={sshd['known_hosts']}", "--json", *QUICK)
    assert code == 0, err
    res = json.loads(out)
    assert res["ok"] and res["runtime"]["runtime"] == "onnxruntime" and res["host"]["latency"]["p50"] > 0
    assert (remote / "digits-onnx-int8" / "model.onnx").is_file()


def test_deploy_over_ssh_to_an_unreachable_device_fails_in_bounded_time(bundles, tmp_path, capsys):
    port = _free_port()  # nothing listens here
    t0 = time.time()
    code, _, err = run_cli(capsys, "deploy", bundles["onnx"]["bundle"], "--to", f"ssh://nobody@127.0.0.1:{port}/tmp/x",
                           "--connect-timeout", "3", "-o", f"UserKnownHostsFile={tmp_path / 'kh'}")
    assert time.time() - t0 < 30
    assert code != 0 and "cannot reach nobody@127.0.0.1" in err and "Traceback" not in err


def test_deploy_to_a_silent_device_times_out(bundles, tmp_path, capsys):
    """A host that accepts TCP but never speaks SSH (a hung device): bounded by --connect-timeout."""
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(5)
        port = srv.getsockname()[1]
        t0 = time.time()
        code, _, err = run_cli(capsys, "deploy", bundles["onnx"]["bundle"], "--to", f"ssh://nobody@127.0.0.1:{port}/tmp/x",
                               "--connect-timeout", "2", "-o", f"UserKnownHostsFile={tmp_path / 'kh'}")
        elapsed = time.time() - t0
    assert code != 0 and "127.0.0.1" in err and "Traceback" not in err
    assert elapsed < 40, elapsed


def test_bad_ssh_url_is_a_clear_error(bundles, capsys):
    code, _, err = run_cli(capsys, "deploy", bundles["onnx"]["bundle"], "--to", "ssh://host-without-path")
    assert code == 2 and "is not ssh://" in err


def test_tflite_selftest_also_runs_on_ai_edge_litert(bundles, tmp_path):
    """The other TFLite runtime: this Python has ai-edge-litert (and TF, which the script never needs)."""
    import sys

    code, res, err = _selftest(Path(sys.executable), Path(bundles["tflite"]["bundle"]), tmp_path)
    assert code == 0, (res, err)
    assert res["runtime"]["runtime"] == "ai_edge_litert" and res["ok"]
