"""The workspace: artifacts the user made are reused when the options match, refused with one
line when they do not, and never overwritten behind the user's back; publishing is atomic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from resnet_deploy.store.artifact import Artifact, TensorSpec, sha256_file
from resnet_deploy.config import ExportConfig, Precision
from resnet_deploy.backend.target import Target, register, unregister
from resnet_deploy.store.workspace import Workspace
from tests.support.cli import run_cli

QUICK = ["--warmup-s", "0.05", "--seconds", "0.1"]


def _hash(out: Path, target: str, precision: str = "int8") -> str:
    """sha256 of the artifact's model file, read from disk (not from its manifest)."""
    a = Artifact.load(out / "digits" / target / precision)
    return sha256_file(a.model_file)


def test_parity_reuses_the_users_onnx_format_and_refuses_a_conflicting_one(tmp_path, capsys):
    out = str(tmp_path)
    code, _, err = run_cli(capsys, "export", "--target", "onnx", "--onnx-format", "qdq-s8s8", "--out", out)
    assert code == 0, err
    before = _hash(tmp_path, "onnx")
    code, stdout, err = run_cli(capsys, "parity", "--targets", "onnx", "--n", "60", "--out", out, "--json")
    assert code == 0, err
    assert _hash(tmp_path, "onnx") == before  # reused, not re-exported with the default format
    m = json.loads((tmp_path / "digits" / "onnx" / "int8" / "manifest.json").read_text())
    assert m["quantization"]["name"] == "qdq-s8s8"
    code, _, err = run_cli(
        capsys, "parity", "--targets", "onnx", "--onnx-format", "qdq-u8s8", "--n", "60", "--out", out
    )
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert code == 2 and len(errors) == 1, err
    assert "options.onnx_format=qdq-s8s8 (asked: qdq-u8s8)" in errors[0] and "not replaced" in errors[0]
    assert _hash(tmp_path, "onnx") == before
    # the same option, given explicitly, is reused
    code, _, err = run_cli(
        capsys, "parity", "--targets", "onnx", "--onnx-format", "qdq-s8s8", "--n", "60", "--out", out
    )
    assert code == 0, err
    assert _hash(tmp_path, "onnx") == before


def test_bench_and_package_use_the_artifact_parity_judged(tmp_path, capsys):
    """Float-I/O int8 TFLite, exported by the user: parity, bench and package all use that file."""
    out = str(tmp_path)
    assert (
        run_cli(capsys, "export", "--target", "tflite", "--io-dtype", "float", "--calib-size", "64", "--out", out)[0]
        == 0
    )
    before = _hash(tmp_path, "tflite")
    code, stdout, err = run_cli(capsys, "parity", "--targets", "tflite", "--n", "60", "--out", out, "--json")
    assert code == 0, err
    assert json.loads(stdout)["results"][0]["runtime"]["io_dtype"] == "float32"
    code, stdout, err = run_cli(
        capsys,
        "bench",
        "--targets",
        "tflite",
        "--precision",
        "int8",
        "--no-keras",
        "--threads",
        "1",
        *QUICK,
        "--out",
        out,
        "--json",
    )
    assert code == 0, err
    bench = json.loads(stdout)
    assert list(bench["artifacts"].values()) == [before] and _hash(tmp_path, "tflite") == before
    code, stdout, err = run_cli(capsys, "package", "--targets", "tflite", "--n", "40", "--out", out, "--json")
    assert code == 0, err
    b = json.loads(stdout)["packaged"][0]
    m = json.loads((Path(b["bundle"]) / "manifest.json").read_text())
    assert m["files"]["model.tflite"]["sha256"] == before and m["quantization"]["io_dtype"] == "float"
    assert m["config"]["calib_size"] == 64
    # a calibration size other than the artifact's is a conflict, not a silent re-export
    code, _, err = run_cli(
        capsys,
        "bench",
        "--targets",
        "tflite",
        "--precision",
        "int8",
        "--calib-size",
        "200",
        "--no-keras",
        "--threads",
        "1",
        *QUICK,
        "--out",
        out,
    )
    assert code == 2 and "calib_size=64 (asked: 200)" in err and _hash(tmp_path, "tflite") == before


def test_an_artifact_from_another_model_is_refused_not_replaced(tmp_path, capsys):
    import keras

    from resnet_deploy.models.source import seed

    path = tmp_path / "mine.keras"
    seed(input_shape=(16, 16, 3), filters=8).save(path)
    out = str(tmp_path / "out")
    assert run_cli(capsys, "export", "--model", str(path), "--precision", "fp32", "--out", out)[0] == 0
    model_file = tmp_path / "out" / "mine" / "tflite" / "fp32" / "model.tflite"
    before = sha256_file(model_file)
    keras.utils.set_random_seed(1)
    seed(input_shape=(16, 16, 3), filters=8).save(path)  # "retrained": same name, other weights
    code, _, err = run_cli(
        capsys,
        "bench",
        "--model",
        str(path),
        "--targets",
        "tflite",
        "--precision",
        "fp32",
        "--no-keras",
        "--threads",
        "1",
        *QUICK,
        "--out",
        out,
    )
    assert code == 2 and "a different model" in err and "export --target tflite --precision fp32" in err, err
    assert sha256_file(model_file) == before
    # export is the command that replaces it
    assert run_cli(capsys, "export", "--model", str(path), "--precision", "fp32", "--out", out)[0] == 0
    assert sha256_file(model_file) != before


class Flaky(Target):
    """Writes its file, then fails half-way when told to: what a converter crash looks like."""

    name = "flaky"
    precisions = tuple(Precision)
    fail = False

    def export_impl(self, model, out_dir, config, calib, progress):
        (out_dir / "model.bin").write_bytes(b"half" if Flaky.fail else b"version 1")
        if Flaky.fail:
            print("ERROR: flaky converter ran out of patience")
            raise RuntimeError("boom")
        spec = TensorSpec("input", "float32", [1, 32, 32, 3])
        return Artifact(self.name, config.precision, out_dir, ["model.bin"], [spec], [spec])


@pytest.fixture
def flaky():
    register("flaky", Flaky)
    yield Flaky
    unregister("flaky")
    Flaky.fail = False


def test_a_failed_re_export_leaves_the_old_artifact_whole(flaky, digits_model, tmp_path):
    from resnet_deploy.exporting import pipeline

    ws = Workspace(tmp_path)
    res = pipeline.export_model(
        pipeline.Loaded.of("digits", digits_model), ["flaky"], ExportConfig(precision="fp32"), ws
    )
    assert res.ok
    d = ws.artifact_dir("digits", "flaky", "fp32")
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    flaky.fail = True
    res = pipeline.export_model(
        pipeline.Loaded.of("digits", digits_model), ["flaky"], ExportConfig(precision="fp32"), ws
    )
    err = res.failures["flaky"]
    assert err.exit_code == 3 and "flaky fp32 export failed: boom" in str(err)
    assert "converter: ERROR: flaky converter ran out of patience" in str(err)  # what the converter printed
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before
    assert sorted(p.name for p in d.parent.iterdir()) == ["fp32"]  # no staging or .old folders left
    Artifact.load(d).verify()


def test_third_party_targets_come_from_the_entry_point_group(tmp_path):
    """A plugin installed as a distribution with a `resnet_deploy.targets` entry point is listed
    and loaded by `list`, like a built-in."""
    import subprocess
    import sys

    (tmp_path / "myplugin.py").write_text(
        "from resnet_deploy.backend.target import Target\nfrom resnet_deploy.config import Precision\n"
        "class MyTarget(Target):\n    name = 'mytarget'\n    precisions = (Precision.FP32,)\n"
        "    description = 'a plugin target'\n"
    )
    dist = tmp_path / "myplugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: myplugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[resnet_deploy.targets]\nmytarget = myplugin:MyTarget\n")
    env = {**__import__("os").environ, "PYTHONPATH": f"{tmp_path}:{Path(__file__).resolve().parents[2]}"}
    proc = subprocess.run(
        [sys.executable, "cli.py", "list"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "mytarget" in proc.stdout and "a plugin target" in proc.stdout


def test_random_init_built_ins_give_the_same_artifacts_every_run(tmp_path, capsys):
    """Seeded weights, canonical names and an ordered tf2onnx: the same command exports
    byte-identical files on every target, even in a process that converted the
    same model before (OpenVINO's, Keras's and tf2onnx's name counters, tf2onnx's set-ordered
    optimiser), and a second parity/bench run reuses the first run's artifacts instead of
    refusing them as another model's."""
    model = ["--model", "resnet18", "--input-size", "32", "--classes", "10", "--width", "8"]
    for run in ("a", "b"):  # int8: the fp32 conversion of ONNX and OpenVINO runs inside it, then the quantizers
        code, _, err = run_cli(
            capsys,
            "export",
            *model,
            "--precision",
            "int8",
            "--calib-size",
            "8",
            "--target",
            "all",
            "--out",
            str(tmp_path / run),
        )
        assert code == 0, err
    for target in ("tflite", "onnx", "openvino"):
        for precision in ("int8",):
            a, b = (Artifact.load(tmp_path / run / "resnet18" / target / precision) for run in ("a", "b"))
            assert a.manifest["model"]["source_sha256"] == b.manifest["model"]["source_sha256"], target
            assert a.files and a.files == b.files
            for f in a.files:
                assert sha256_file(a.path / f) == sha256_file(b.path / f), (target, precision, f)
            assert a.manifest["layer_map"] == b.manifest["layer_map"], (target, precision)
    before = sha256_file(tmp_path / "a" / "resnet18" / "onnx" / "int8" / "manifest.json")
    code, _, err = run_cli(
        capsys,
        "bench",
        *model,
        "--precision",
        "int8",
        "--targets",
        "onnx",
        "--no-keras",
        "--threads",
        "1",
        *QUICK,
        "--out",
        str(tmp_path / "a"),
    )
    assert code == 0, err
    assert "exporting" not in err  # reused, not exported again
    assert sha256_file(tmp_path / "a" / "resnet18" / "onnx" / "int8" / "manifest.json") == before
