"""The CLI: real exports, manifests, and one clear line for every user error."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from resnet_deploy.store.artifact import Artifact, sha256_file
from resnet_deploy.cli.main import main
from resnet_deploy.errors import IntegrityError
from tests.support.cli import run_cli

REPO = Path(__file__).resolve().parents[2]


def test_default_export_from_the_repo_root(tmp_path):
    """README's main job, as a user runs it: a real process, the default int8 digits model."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "cli.py", "export", "--target", "tflite", "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    seconds = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert seconds < 60, seconds
    d = tmp_path / "digits" / "tflite" / "int8"
    m = json.loads((d / "manifest.json").read_text())
    assert m["files"]["model.tflite"]["sha256"] == sha256_file(d / "model.tflite")
    assert m["inputs"][0]["dtype"] == "int8" and m["inputs"][0]["layout"] == "NHWC"
    assert m["inputs"][0]["shape"] == [1, 32, 32, 3] and m["inputs"][0]["quant"]["scale"] > 0
    assert m["outputs"][0]["quant"] is not None
    assert m["preprocessing"]["height"] == 32 and m["preprocessing"]["scale"] == pytest.approx(1 / 255)
    assert len(m["calibration"]["fingerprint_sha256"]) == 64 and m["calibration"]["count"] == 200
    for tool in ("tensorflow", "keras", "ai-edge-litert", "python", "resnet-deploy"):
        assert tool in m["tool_versions"]
    assert m["export"]["utc"] and m["model"]["source_sha256"]
    assert [p.name for p in d.parent.iterdir()] == ["int8"]  # no staging leftovers


def test_export_fp32_seed_and_verify(tmp_path, capsys):
    code, out, err = run_cli(
        capsys, "export", "--model", "seed", "--precision", "fp32", "--out", str(tmp_path), "--json"
    )
    assert code == 0, err
    rec = json.loads(out)["artifacts"][0]
    a = Artifact.load(Path(rec["path"]).parent)
    a.verify()
    assert a.manifest["calibration"] is None and a.outputs[0].shape == [1, 64, 64, 64]
    # a changed byte is caught
    data = bytearray(a.model_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    a.model_file.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="does not match"):
        a.verify()


def test_list(capsys):
    code, out, _ = run_cli(capsys, "list")
    assert code == 0
    for word in ("tflite", "onnx", "openvino", "resnet50", "digits", "int8", "dynamic"):
        assert word in out


def _nan_npz(tmp_path):
    x = np.random.default_rng(0).random((4, 32, 32, 3)).astype(np.float32)
    x[2, 0, 0, 0] = np.nan
    np.savez(tmp_path / "nan.npz", x=x)
    return str(tmp_path / "nan.npz")


def _corrupt_model(tmp_path):
    (tmp_path / "broken.keras").write_bytes(b"PK\x03\x04 truncated")
    return str(tmp_path / "broken.keras")


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--target", "tflite2"], "Unrecognized target='tflite2'"),
        (["--model", "resnet99"], "Unrecognized model='resnet99'"),
        (["--precision", "int4"], "Unrecognized precision='int4'"),
        (["--calib", "{tmp}/missing"], "--calib '"),
        (["--calib", "{tmp}/missing.npz"], "--calib '"),
        (["--calib", "{tmp}/empty"], "--calib folder"),
        (["--calib", "NAN"], "contains NaN"),
        (["--model", "{tmp}/missing.keras"], "does not exist"),
        (["--model", "CORRUPT"], "is not a .keras file (not a zip archive)"),
        (["--calib-size", "0"], "--calib-size 0 must be"),
        (["--opset", "99"], "opset=99 is outside"),
        (["--onnx-format", "qdq-u4"], "Unrecognized --onnx-format="),
        (["--preprocess", "imagenet"], "Unrecognized preprocess='imagenet'"),
        (["--mean", "0.5,0.5"], "--mean has 2 values; pass 1 (every channel) or 3 (RGB/BGR)"),
        (["--resize", "center-crop"], "Image of 8x8 is smaller than the 32x32 center crop"),
        (["--io-dtype", "int16"], "Unrecognized --io-dtype="),
        (["--bogus"], "No such option"),
    ],
)
def test_user_errors_are_one_line_with_exit_2(tmp_path, capsys, args, needle):
    (tmp_path / "empty").mkdir()
    out_dir = tmp_path / "out"
    (out_dir / "digits" / "tflite").mkdir(parents=True)  # an existing workspace: the export would go in here
    (out_dir / "digits" / "tflite" / "keep.txt").write_text("mine")
    before = sorted(p.relative_to(out_dir) for p in out_dir.rglob("*"))
    subst = {"NAN": _nan_npz(tmp_path), "CORRUPT": _corrupt_model(tmp_path)}
    argv = ["export", "--out", str(out_dir)] + [subst.get(a, a.format(tmp=tmp_path)) for a in args]
    code, _, err = run_cli(capsys, *argv)
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert code == 2, err
    assert len(lines) == 1 and needle in lines[0], err
    assert "Traceback" not in err
    # nothing was added to (or taken from) the existing workspace, not even a staging folder
    assert sorted(p.relative_to(out_dir) for p in out_dir.rglob("*")) == before


def test_onnx_options_reach_the_manifest(tmp_path, capsys):
    code, out, err = run_cli(
        capsys,
        "export",
        "--target",
        "onnx",
        "--opset",
        "15",
        "--calib-method",
        "entropy",
        "--onnx-format",
        "qdq-s8s8",
        "--calib-size",
        "50",
        "--out",
        str(tmp_path),
        "--json",
    )
    assert code == 0, err
    m = json.loads((Path(json.loads(out)["artifacts"][0]["path"]).parent / "manifest.json").read_text())
    assert m["onnx"]["opset"] == 15
    q = m["quantization"]
    assert (q["calibration_method"], q["name"], q["activations"], q["reason"]) == (
        "entropy",
        "qdq-s8s8",
        "int8",
        "requested by the user",
    )
    assert {"tf2onnx", "onnx", "onnxruntime"} <= set(m["tool_versions"])
    from tests.support.artifact_facts import onnx_quant_facts

    facts = onnx_quant_facts(Path(json.loads(out)["artifacts"][0]["path"]))
    assert facts["activation_zero_point_types"] == {"int8"} and facts["max_abs_weight"] == 127  # S8S8, full range


def test_export_all_with_one_failing_target_keeps_the_others_and_exits_3(tmp_path, capsys):
    from resnet_deploy.config import Precision
    from resnet_deploy.backend.target import Target, register, unregister

    class Broken(Target):
        name, precisions = "broken", tuple(Precision)

        def export_impl(self, *args):
            raise RuntimeError("converter exploded")

    register("broken", Broken)
    try:
        code, out, err = run_cli(
            capsys, "export", "--target", "tflite,broken", "--precision", "fp32", "--out", str(tmp_path), "--json"
        )
    finally:
        unregister("broken")
    assert code == 3, err
    assert [ln for ln in err.splitlines() if ln.startswith("error:")] == [
        "error: broken fp32 export failed: converter exploded"
    ]
    rep = json.loads(out)
    assert [a["target"] for a in rep["artifacts"]] == ["tflite"] and "broken" in rep["failures"]
    Artifact.load(tmp_path / "digits" / "tflite" / "fp32").verify()
    assert not (tmp_path / "digits" / "broken").exists() or not any((tmp_path / "digits" / "broken").iterdir())


def test_progress_goes_to_stderr_and_results_to_stdout(tmp_path):
    proc = subprocess.run(
        [sys.executable, "cli.py", "export", "--precision", "fp32", "--out", str(tmp_path), "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "loading model digits" in proc.stderr and "✓ exporting digits -> tflite fp32" in proc.stderr
    assert "exporting" not in proc.stdout and json.loads(proc.stdout)["artifacts"][0]["target"] == "tflite"


@pytest.mark.parametrize("where", ["file", "under-file"])
def test_an_unusable_output_folder_is_one_line_not_a_traceback(tmp_path, capsys, where):
    (tmp_path / "afile").write_text("x")
    out = tmp_path / "afile" if where == "file" else tmp_path / "afile" / "sub"
    code, _, err = run_cli(capsys, "export", "--precision", "fp32", "--out", str(out))
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    said = "is a file; pass a folder" if where == "file" else "afile' is a file, not a folder"
    assert said in lines[0] and lines[0].startswith(f"error: --out {str(out)!r}"), lines[0]
    assert (tmp_path / "afile").read_text() == "x"


def test_a_full_disk_is_its_own_exit_code(capsys, monkeypatch):
    import errno

    from resnet_deploy import exits

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", "/data/out/model.tflite")

    from resnet_deploy.cli.main import cli

    @cli.command("fill")
    def fill():
        full()

    try:
        with pytest.raises(SystemExit) as e:
            main(["fill"])
    finally:
        cli.commands.pop("fill")
    err = capsys.readouterr().err
    assert e.value.code == 7 == exits.EXIT_DISK_FULL
    assert (
        err.strip() == "error: the disk is full (the one mounted at '/'): could not write '/data/out/model.tflite'; "
        "free space there or pass --out on another disk."
    )


@pytest.mark.parametrize("command", ["parity", "diagnose", "package"])
def test_missing_data_is_named_by_its_option(tmp_path, capsys, command):
    code, _, err = run_cli(capsys, command, "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path))
    assert code == 2 and err.count("error:") == 1 and f"--data '{tmp_path / 'nowhere'}' does not exist" in err, err
    assert "Calibration" not in err


def test_list_speaks_json(capsys):
    code, out, _ = run_cli(capsys, "list", "--json")
    d = json.loads(out)
    assert code == 0 and {t["name"] for t in d["targets"]} >= {"tflite", "onnx", "openvino"}
    assert "int8" in d["precisions"] and any(m["name"] == "digits" for m in d["models"])


def test_under_json_an_error_is_a_json_object_on_stdout_too(tmp_path, capsys):
    code, out, err = run_cli(capsys, "export", "--model", str(tmp_path / "gone.keras"), "--json")
    assert code == 2 and err.count("error:") == 1
    assert json.loads(out) == {"error": err.strip().removeprefix("error: "), "exit_code": 2}
    code, out, err = run_cli(capsys, "export", "--model", str(tmp_path / "gone.keras"))
    assert code == 2 and out == ""  # without --json stdout stays empty
