"""Real users' models: a trained model with its own Rescaling layer gets a correct bundle with
nothing but --data; fed the wrong preprocessing it is refused (exit 2) instead of "passing";
keras.applications ResNets export, parity-check and package on every target."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.support.cli import run_cli


@pytest.fixture(scope="module")
def rescaling_model(tmp_path_factory):
    """The trained digits network behind a Rescaling(1/255): it takes raw 0..255 pixels."""
    import keras

    from resnet_deploy.models.digits import load_trained

    inner = load_trained()
    inp = keras.Input((32, 32, 3), name="pixels")
    out = inner(keras.layers.Rescaling(1 / 255, name="rescale")(inp))
    path = tmp_path_factory.mktemp("user") / "mine.keras"
    keras.Model(inp, out, name="mine").save(path)
    return path


@pytest.fixture(scope="module")
def digits_folder(tmp_path_factory):
    """120 held-out digits as PNG files in class subfolders (labels from folder names)."""
    from PIL import Image

    from resnet_deploy.calibration.sources import load_digits_split

    d = tmp_path_factory.mktemp("digits-png")
    images, labels = load_digits_split("test")
    for i, (img, lab) in enumerate(zip(images[:120], labels[:120])):
        (d / str(lab)).mkdir(exist_ok=True)
        Image.fromarray(img).save(d / str(lab) / f"{i:03d}.png")
    return d


def test_a_model_with_its_own_rescaling_gets_a_correct_bundle_with_only_data(
    rescaling_model, digits_folder, tmp_path, capsys
):
    code, out, err = run_cli(
        capsys,
        "package",
        "--model",
        str(rescaling_model),
        "--data",
        str(digits_folder),
        "--targets",
        "tflite",
        "--n",
        "60",
        "--out",
        str(tmp_path),
        "--json",
    )
    assert code == 0, err
    assert "preprocessing: raw" in err and "Rescaling (rescale)" in err and "calibrating on --data" in err
    b = json.loads(out)["packaged"][0]
    m = json.loads((Path(b["bundle"]) / "manifest.json").read_text())
    assert m["preprocessing"]["preset"] == "raw" and m["preprocessing"]["scale"] == 1.0
    assert "Rescaling" in m["preprocessing"]["why"]
    assert m["host"]["parity"]["ref_accuracy"] >= 0.95 and m["host"]["parity"]["acc_drop"] <= 2.0
    with np.load(Path(b["bundle"]) / "reference.npz") as z:
        assert z["x"].max() > 200  # the reference holds raw pixels, as the model wants


def test_the_wrong_preprocessing_is_refused_not_passed(rescaling_model, digits_folder, tmp_path, capsys):
    args = [
        "--model",
        str(rescaling_model),
        "--data",
        str(digits_folder),
        "--targets",
        "tflite",
        "--n",
        "60",
        "--preprocess",
        "unit",
        "--out",
        str(tmp_path),
    ]
    for command in ("package", "parity"):
        code, _, err = run_cli(capsys, command, *args)
        lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
        assert code == 2 and len(lines) == 1, err
        assert "the Keras model itself scores" in lines[0] and "(chance is 10.0%)" in lines[0]
        assert "try --preprocess raw" in lines[0] and "--allow-low-accuracy" in lines[0]
    assert not (tmp_path / "bundles").exists()
    code, _, err = run_cli(capsys, "parity", *args, "--allow-low-accuracy", "--precision", "fp32")
    assert code == 0, err  # overridden: fp32 still agrees with (garbage-fed) Keras


def test_a_user_model_without_data_is_told_what_to_pass(rescaling_model, tmp_path, capsys):
    code, _, err = run_cli(
        capsys, "parity", "--model", str(rescaling_model), "--targets", "tflite", "--out", str(tmp_path)
    )
    assert code == 2 and "mine.keras needs its own images: pass --data DIR|FILE.npz" in err
    code, _, err = run_cli(capsys, "export", "--model", str(rescaling_model), "--out", str(tmp_path))
    assert code == 2 and "pass --calib DIR|FILE.npz" in err
    assert not list(tmp_path.rglob("manifest.json"))


def test_unlabelled_data_reports_how_spread_the_predictions_are(tmp_path, capsys):
    from resnet_deploy.calibration.sources import load_digits_split

    images, _ = load_digits_split("test")
    np.savez(tmp_path / "unlabelled.npz", x=images[:50])
    code, out, err = run_cli(
        capsys,
        "parity",
        "--targets",
        "onnx",
        "--precision",
        "fp32",
        "--data",
        str(tmp_path / "unlabelled.npz"),
        "--n",
        "50",
        "--out",
        str(tmp_path),
        "--json",
    )
    assert code == 0, err
    pred = json.loads(out)["reference"]["predictions"]
    assert pred["classes"] == 10 and pred["distinct_top1"] == 10 and 0 < pred["mean_entropy_bits"] < 3.33
    assert sum(pred["top_classes"].values()) <= 50


def test_keras_resnet50_exports_and_checks_on_every_target(tmp_path, capsys):
    """(Packaging is the same code for every model: tests/ship/test_bundle.py packages digits.)"""
    model = ["--model", "keras:ResNet50", "--input-size", "64", "--classes", "10"]
    out = str(tmp_path)
    code, _, err = run_cli(capsys, "export", *model, "--precision", "fp32", "--target", "all", "--out", out)
    assert code == 0, err
    assert (
        "preprocessing: imagenet-caffe" in err
        and "the preprocessing ResNet50 is made for" in err
        and "untrained" in err
    )
    code, stdout, err = run_cli(capsys, "parity", *model, "--precision", "fp32", "--n", "4", "--out", out)
    assert code == 0, err
    assert "UNTRAINED model (random weights)" in stdout and "| openvino/fp32 | fp32 | f32 |" in stdout
    for target in ("tflite", "onnx", "openvino"):
        m = json.loads((tmp_path / "ResNet50" / target / "fp32" / "manifest.json").read_text())
        assert m["model"]["trained"] is False and m["preprocessing"]["channels"] == "bgr", target


def test_a_keras_application_saved_as_a_file_loads_and_exports(tmp_path, capsys):
    import keras

    path = tmp_path / "v2.keras"
    keras.applications.ResNet50V2(weights=None, input_shape=(64, 64, 3), classes=5).save(path)
    code, _, err = run_cli(capsys, "export", "--model", str(path), "--precision", "fp32", "--out", str(tmp_path))
    assert code == 0, err
    assert (tmp_path / "v2" / "tflite" / "fp32" / "model.tflite").is_file()
    # recognised as the keras.applications network it is: its own preprocessing, with the reason
    assert "preprocessing: symmetric" in err and "built from keras.applications ResNet50V2" in err
    m = json.loads((tmp_path / "v2" / "tflite" / "fp32" / "manifest.json").read_text())
    assert m["preprocessing"]["preset"] == "symmetric" and "3-4-6-3 residual blocks" in m["preprocessing"]["why"]
    # --preprocess always wins over what was recognised
    code, _, err = run_cli(
        capsys, "export", "--model", str(path), "--precision", "fp32", "--preprocess", "unit", "--out", str(tmp_path)
    )
    assert code == 0 and "preprocessing: unit" in err and "declared with --preprocess" in err


def test_weights_are_local_files_only(tmp_path, capsys):
    code, _, err = run_cli(
        capsys,
        "export",
        "--model",
        "keras:ResNet50",
        "--weights",
        str(tmp_path / "none.h5"),
        "--precision",
        "fp32",
        "--out",
        str(tmp_path),
    )
    assert code == 2 and "does not exist; pass a local .weights.h5/.h5 file (nothing is downloaded)" in err
    code, _, err = run_cli(
        capsys, "export", "--model", "digits", "--weights", str(tmp_path / "w.h5"), "--out", str(tmp_path)
    )
    assert code == 2 and "Model 'digits' does not take --weights" in err
