"""Bundles: packaging, self-tests in runtime-only virtualenvs, tamper and path-traversal refusal,
and deploys to a folder and over real SSH to an OpenSSH server on 127.0.0.1."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from resnet_deploy.ship import unpack  # noqa: F401

from resnet_deploy.ship import bundle

from resnet_deploy.portable.integrity import sha256_file
from resnet_deploy.errors import IntegrityError
from tests.support import devices
from tests.support.cli import run_cli
from tests.support.cli import QUICK

DEVICE_OF = {"tflite": "tflite-runtime", "onnx": "onnxruntime", "openvino": "openvino"}
RUNTIME_OF = {"tflite": "tflite_runtime", "onnx": "onnxruntime", "openvino": "openvino"}


def _selftest(python: Path, bundle_dir: Path, cwd: Path) -> tuple[int, dict, str]:
    proc = subprocess.run(
        [str(python), str(bundle_dir / "selftest.py"), *QUICK], capture_output=True, text=True, timeout=300, cwd=cwd
    )
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
    assert code == 6 and f"bundle {str(d)!r} refused on the host" in err and "Traceback" not in err
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
        unpack.safe_extract(evil, tmp_path / "x")
    assert not (tmp_path / "x" / "b").exists() and not (tmp_path / "escape.txt").exists()
    code, _, err = run_cli(capsys, "deploy", str(evil), "--to", str(tmp_path / "device"))
    assert code == 6 and "refused" in err


def test_deploy_tarball_to_a_folder(bundles, tmp_path, capsys):
    code, out, err = run_cli(
        capsys,
        "deploy",
        bundles["tflite"]["tarball"],
        "--to",
        str(tmp_path / "device"),
        "--python",
        str(devices.ensure("tflite-runtime")),
        *QUICK,
    )
    assert code == 0, err
    assert "digits-tflite-int8: OK on the device (tflite_runtime 2.14.0" in out
    assert "| accuracy |" in out and "| p50 ms |" in out
    assert (tmp_path / "device" / "digits-tflite-int8" / "model.tflite").is_file()


def test_tflite_selftest_also_runs_on_ai_edge_litert(bundles, tmp_path):
    """The other TFLite runtime: this Python has ai-edge-litert (and TF, which the script never needs)."""
    import sys

    code, res, err = _selftest(Path(sys.executable), Path(bundles["tflite"]["bundle"]), tmp_path)
    assert code == 0, (res, err)
    assert res["runtime"]["runtime"] == "ai_edge_litert" and res["ok"]


def _rewritten_copy(src: Path, dest: Path, edit) -> Path:
    """A copy of a bundle changed by `edit(manifest, folder)`, with every hash recomputed: a bundle
    that is intact but promises something the device cannot hold."""
    d = dest / src.name
    shutil.copytree(src, d)
    m = json.loads((d / "manifest.json").read_text())
    edit(m, d)
    for name, rec in m["files"].items():
        rec["sha256"] = sha256_file(d / name)
    (d / "manifest.json").write_text(json.dumps(m))
    (d / "manifest.sha256").write_text(f"{sha256_file(d / 'manifest.json')}  manifest.json\n")
    return d


def test_a_breach_on_the_device_exits_5_and_deploy_passes_it_on(bundles, tmp_path, capsys):
    d = _rewritten_copy(
        Path(bundles["onnx"]["bundle"]), tmp_path / "b", lambda m, _: m["tolerance"].update(cosine_min=0.9999999)
    )
    code, res, err = _selftest(devices.ensure("onnxruntime"), d, tmp_path)
    assert code == 5 and not res["ok"] and res["breaches"][0]["metric"] == "cosine"
    assert "error: self-test failed: cosine=" in err and "(limit >= 0.9999999)" in err
    code, out, err = run_cli(
        capsys,
        "deploy",
        str(d),
        "--to",
        str(tmp_path / "device"),
        "--python",
        str(devices.ensure("onnxruntime")),
        *QUICK,
    )
    assert code == 5 and "breach: cosine=" in out and "error: self-test failed on the device" in err


def test_a_runtime_that_ignores_its_precision_hint_exits_4_on_the_device(bundles, tmp_path, capsys):
    """The device refuses to run an OpenVINO model in a precision nobody chose: the bundle asks
    for one this CPU's plugin does not have, and the plugin silently compiles another."""
    import openvino as ov

    caps = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    hint = next((h for h, cap in (("bf16", "BF16"), ("f16", "FP16")) if cap not in caps), None)
    if hint is None:
        pytest.skip("this CPU's plugin honours both bf16 and f16: no hint it would ignore")
    d = _rewritten_copy(
        Path(bundles["openvino"]["bundle"]), tmp_path / "b", lambda m, _: m["openvino"].update(execution_precision=hint)
    )
    py = devices.ensure("openvino")
    code, res, err = _selftest(py, d, tmp_path)
    assert code == 4 and f"not the requested {hint}" in res["error"], res
    code, _, err = run_cli(capsys, "deploy", str(d), "--to", str(tmp_path / "device"), "--python", str(py), *QUICK)
    assert code == 4 and f"not the requested {hint}" in err


def test_a_model_the_runtime_cannot_load_exits_4(bundles, tmp_path):
    d = _rewritten_copy(
        Path(bundles["onnx"]["bundle"]),
        tmp_path / "b",
        lambda m, folder: (folder / "model.onnx").write_bytes(b"not an onnx model"),
    )
    code, res, _ = _selftest(devices.ensure("onnxruntime"), d, tmp_path)
    assert code == 4 and res["error"].startswith("the runtime could not run the model"), res


def test_the_bundle_folder_is_left_as_shipped_after_a_selftest(bundles, tmp_path):
    """No __pycache__ or other files appear in a verified bundle when its self-test runs."""
    d = tmp_path / "copy" / Path(bundles["onnx"]["bundle"]).name
    shutil.copytree(bundles["onnx"]["bundle"], d)
    before = sorted(p.relative_to(d) for p in d.rglob("*"))
    assert _selftest(devices.ensure("onnxruntime"), d, tmp_path)[0] == 0
    assert sorted(p.relative_to(d) for p in d.rglob("*")) == before


def test_rd_portable_is_a_byte_for_byte_copy_of_the_portable_core(bundles):
    """The device judges with exactly the code the host judged with."""
    from resnet_deploy import portable

    src = Path(portable.__file__).parent
    for b in bundles.values():
        shipped = Path(b["bundle"]) / "rd_portable"
        assert sorted(p.name for p in shipped.iterdir()) == sorted(p.name for p in src.glob("*.py"))
        for f in src.glob("*.py"):
            assert (shipped / f.name).read_bytes() == f.read_bytes(), f.name
        assert (Path(b["bundle"]) / "selftest.py").read_bytes() == (src.parent / "ship" / "selftest.py").read_bytes()
