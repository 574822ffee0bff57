"""The harness itself: a fake runner proves a breach fails the run; references replay without Keras."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from resnet_deploy.store.artifact import Artifact, TensorSpec
from resnet_deploy.config import Precision
from resnet_deploy.backend.runner import Runner
from resnet_deploy.backend.target import Target, register, unregister
from tests.support.cli import run_cli

REPO = Path(__file__).resolve().parents[2]


class NoisyRunner(Runner):
    """Returns the Keras digits logits plus noise: what a broken quantizer looks like."""

    name = "fake"

    def __init__(self, noise: float) -> None:
        super().__init__()
        self.noise = noise

    def activate_impl(self) -> None:
        from resnet_deploy.models.digits import load_trained

        self.model = load_trained()
        self.input_shape = (None, 32, 32, 3)

    def infer_impl(self, x):
        rng = np.random.default_rng(0)
        y = np.asarray(self.model(x, training=False))
        return y + rng.normal(scale=self.noise, size=y.shape).astype(np.float32)

    def info(self):
        return {"runner": "fake", "threads": 1, "precision": "int8"}


class FakeTarget(Target):
    name = "fake"
    precisions = tuple(Precision)
    noise = 0.0

    def export_impl(self, model, out_dir, config, calib, progress):
        (out_dir / "model.fake").write_bytes(b"fake")
        spec = TensorSpec("input", "float32", [-1, 32, 32, 3])
        return Artifact(self.name, config.precision, out_dir, ["model.fake"], [spec], [spec])

    def runner(self, artifact, threads=None):
        return NoisyRunner(self.noise)


class EchoTarget(FakeTarget):
    """The exported Keras model itself plus noise of `noise` times its outputs' spread."""

    name = "echo"
    keras = None

    def export_impl(self, model, out_dir, config, calib, progress):
        EchoTarget.keras = model
        (out_dir / "model.fake").write_bytes(b"fake")
        spec = TensorSpec("input", "float32", [-1, *model.input_shape[1:]])
        return Artifact(self.name, config.precision, out_dir, ["model.fake"], [spec], [spec])

    def runner(self, artifact, threads=None):
        return EchoRunner(EchoTarget.keras, self.noise)


class EchoRunner(NoisyRunner):
    def __init__(self, model, noise: float) -> None:
        super().__init__(noise)
        self.keras = model

    def activate_impl(self) -> None:
        self.input_shape = tuple(self.keras.input_shape)

    def infer_impl(self, x):
        y = np.asarray(self.keras(x, training=False))
        return y + np.random.default_rng(0).normal(scale=self.noise * y.std(), size=y.shape).astype(np.float32)


@pytest.fixture
def fake_target():
    register("fake", FakeTarget)
    yield FakeTarget
    unregister("fake")
    FakeTarget.noise = 0.0


def test_fake_runner_within_tolerance_passes(fake_target, tmp_path, capsys):
    code, out, err = run_cli(
        capsys, "parity", "--targets", "fake", "--precision", "int8", "--n", "100", "--out", str(tmp_path)
    )
    assert code == 0, err
    assert "| fake/int8 | int8 |" in out and "| ok |" in out


def test_fake_runner_breach_fails_the_run(fake_target, tmp_path, capsys):
    fake_target.noise = 8.0  # logits are ~10 apart: this flips many top-1s
    code, out, err = run_cli(
        capsys, "parity", "--targets", "fake", "--precision", "int8", "--n", "100", "--out", str(tmp_path)
    )
    assert code == 5
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert errors and all("fake/int8 (int8)" in ln for ln in errors)
    assert any("top1_agreement=" in ln and "limit >= 0.95" in ln for ln in errors)
    report = json.loads((tmp_path / "digits" / "parity.json").read_text())
    assert report["ok"] is False and report["results"][0]["breaches"]


def test_tolerance_override_can_fail_a_real_backend(tmp_path, capsys):
    code, _, err = run_cli(
        capsys,
        "parity",
        "--targets",
        "onnx",
        "--precision",
        "int8",
        "--n",
        "100",
        "--out",
        str(tmp_path),
        "--tol",
        "int8.cosine_min=0.999999",
    )
    assert code == 5 and "onnx/int8 (int8): cosine=" in err and "limit >= 0.999999" in err


def test_report_records_runtime_facts(tmp_path, capsys):
    code, out, err = run_cli(
        capsys, "parity", "--targets", "all", "--precision", "fp32", "--n", "50", "--out", str(tmp_path), "--json"
    )
    assert code == 0, err
    rep = json.loads(out)
    assert [r["name"] for r in rep["results"]] == ["tflite/fp32", "onnx/fp32", "openvino/fp32"]
    ov = rep["results"][2]["runtime"]
    assert ov["inference_precision"] == "f32" and ov["threads"] == 2
    # the recorded CPU features are this CPU's, checked against numpy's own CPUID probe
    from numpy._core._multiarray_umath import __cpu_features__ as numpy_sees

    feats = rep["environment"]["cpu"]["features"]
    for ours, numpys in (
        ("avx2", "AVX2"),
        ("avx512f", "AVX512F"),
        ("avx512_vnni", "AVX512VNNI"),
        ("avx512_bf16", "AVX512BF16"),
    ):
        assert feats[ours] == bool(numpy_sees.get(numpys)), (ours, feats)
    assert {"onnxruntime", "openvino", "ai-edge-litert"} <= set(rep["environment"]["versions"])
    matrix = rep["agreement"]["matrix"]
    assert set(matrix) == {"keras", "tflite/fp32", "onnx/fp32", "openvino/fp32"}
    assert matrix["tflite/fp32"]["openvino/fp32"] == 1.0


def test_saved_reference_replays_without_tensorflow(tmp_path, capsys):
    ref = tmp_path / "ref.npz"
    out_dir = tmp_path / "art"
    code, _, err = run_cli(
        capsys,
        "parity",
        "--targets",
        "tflite,onnx",
        "--precision",
        "int8",
        "--n",
        "60",
        "--out",
        str(out_dir),
        "--save-reference",
        str(ref),
    )
    assert code == 0, err
    with np.load(ref) as z:
        assert z["x"].shape == (60, 32, 32, 3) and z["outputs"].shape == (60, 10) and z["labels"].shape == (60,)
    blocker = tmp_path / "block"
    (blocker / "tensorflow").mkdir(parents=True)
    (blocker / "tensorflow" / "__init__.py").write_text("raise ImportError('tensorflow is blocked in this test')\n")
    env = {**os.environ, "PYTHONPATH": f"{blocker}{os.pathsep}{REPO}"}
    proc = subprocess.run(
        [
            sys.executable,
            "cli.py",
            "parity",
            "--reference",
            str(ref),
            "--targets",
            "tflite,onnx",
            "--precision",
            "int8",
            "--out",
            str(out_dir),
            "--json",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(proc.stdout)
    assert rep["samples"] == 60 and rep["ok"]
    # a reference run cannot export, so a missing artifact is a clear error
    proc = subprocess.run(
        [
            sys.executable,
            "cli.py",
            "parity",
            "--reference",
            str(ref),
            "--targets",
            "openvino",
            "--precision",
            "int8",
            "--out",
            str(out_dir),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2 and "No openvino int8 artifact" in proc.stderr and "Traceback" not in proc.stderr


def test_parity_on_an_image_folder_with_class_subfolders(tmp_path, capsys):
    """Real images as files: class subfolders give labels, so accuracy is measured too."""
    from PIL import Image

    from resnet_deploy.calibration.sources import load_digits_split

    images, labels = load_digits_split("test")
    for i, (img, lab) in enumerate(zip(images[:120], labels[:120])):
        (tmp_path / "imgs" / str(lab)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(tmp_path / "imgs" / str(lab) / f"{i:03d}.png")
    code, out, err = run_cli(
        capsys,
        "parity",
        "--targets",
        "tflite",
        "--precision",
        "int8",
        "--data",
        str(tmp_path / "imgs"),
        "--out",
        str(tmp_path / "art"),
        "--json",
    )
    assert code == 0, err
    assert "--n not given: using all 120 samples of the data" in err  # a user's data: all of it, said
    rep = json.loads(out)
    m = rep["results"][0]["metrics"]
    assert rep["samples"] == 120 and rep["data"]["source"]["classes"] == [str(i) for i in range(10)]
    assert m["ref_accuracy"] >= 0.95 and m["acc_drop"] <= 2.0


def test_package_refuses_an_artifact_that_breaks_its_tolerance_on_the_host(fake_target, tmp_path, capsys):
    fake_target.noise = 8.0
    code, _, err = run_cli(capsys, "package", "--targets", "fake", "--n", "60", "--out", str(tmp_path))
    assert code == 5 and "fake/int8 breaks its tolerance on the host" in err and "not packaging" in err
    assert not (tmp_path / "bundles").exists() or not any((tmp_path / "bundles").iterdir())


def test_package_says_each_targets_outcome_when_one_is_refused(fake_target, tmp_path, capsys):
    """Two targets, one breaking its tolerance: the other is packaged, stdout says both, exit 5."""
    fake_target.noise = 8.0
    args = ["package", "--targets", "tflite,fake", "--n", "60", "--out", str(tmp_path)]
    code, out, err = run_cli(capsys, *args)
    assert code == 5 and err.count("error:") == 1 and "fake/int8 breaks its tolerance on the host" in err
    lines = out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("packaged tflite/int8: ") and " KiB  host p50 " in lines[0]
    assert lines[1].startswith("refused  fake/int8: fake/int8 breaks its tolerance on the host (cosine=")
    assert sorted(p.name for p in (tmp_path / "bundles").iterdir()) == [
        "digits-tflite-int8",
        "digits-tflite-int8.tar.gz",
    ]
    code, out, _ = run_cli(capsys, *args, "--json")
    made = json.loads(out)
    assert code == 5 and [b["target"] for b in made["packaged"]] == ["tflite"]
    assert [(r["target"], r["precision"]) for r in made["refused"]] == [("fake", "int8")]


def test_package_takes_the_same_tol_overrides_as_parity_and_ships_them(tmp_path, capsys):
    args = ["package", "--targets", "tflite", "--n", "60", "--out", str(tmp_path)]
    code, out, err = run_cli(capsys, *args, "--tol", "int8.sqnr_min_db=200")  # no int8 reaches 200 dB
    assert code == 5 and out.startswith("refused  tflite/int8: ") and "(limit >= 200)" in err, err
    code, out, err = run_cli(capsys, *args, "--tol", "int8.cosine_min=0.5")
    assert code == 0 and out.startswith("packaged tflite/int8: "), err
    manifest = json.loads((tmp_path / "bundles" / "digits-tflite-int8" / "manifest.json").read_text())
    assert manifest["tolerance"]["cosine_min"] == 0.5 and manifest["tolerance"]["sqnr_min_db"] == 12.0
    code, _, err = run_cli(capsys, *args, "--tol", "int8.nope=1")
    assert code == 2 and err.count("\n") == 1 and "Unknown tolerance field(s) ['nope']" in err


def test_an_untrained_models_top1_agreement_is_noise_not_a_failure(tmp_path, capsys):
    """Near-uniform outputs: small noise flips which class wins (agreement well below 0.95) while
    cosine and SQNR stay high. Not judged, and said so; a limit the user names is still checked."""
    register("echo", EchoTarget)
    EchoTarget.noise = 0.1
    try:
        args = ["parity", "--model", "resnet18", "--input-size", "32", "--targets", "echo", "--n", "64"]
        args += ["--precision", "int8", "--out", str(tmp_path)]
        code, out, err = run_cli(capsys, *args, "--json")
        (r,) = json.loads(out)["results"]
        assert r["metrics"]["top1_agreement"] < 0.9 and r["metrics"]["cosine"] > 0.98, r["metrics"]
        assert code == 0 and r["tolerance"]["top1_min"] is None and not r["breaches"], err
        code, out, _ = run_cli(capsys, *args)
        assert "top-1 agreement and accuracy are not judged: an untrained model's outputs are near-uniform" in out
        code, _, err = run_cli(capsys, *args, "--tol", "int8.top1_min=0.95")
        assert code == 5 and "top1_agreement=" in err
    finally:
        unregister("echo")
