"""Shared fixtures: the trained digits model, its held-out test split, a calibration set."""

from __future__ import annotations

import pytest

from resnet_deploy._tf import quiet_tf

quiet_tf()


@pytest.fixture(scope="session")
def digits_model():
    from resnet_deploy.models.digits import load_trained

    return load_trained()


@pytest.fixture(scope="session")
def digits_test():
    """The held-out split (450 real handwritten digits) the model never trained on."""
    from resnet_deploy.models.digits import dataset

    return dataset("test")


@pytest.fixture(scope="session")
def digits_calib(digits_model):
    from resnet_deploy.calibration.dataset import from_spec

    return from_spec("digits", digits_model.input_shape, size=200)


@pytest.fixture(scope="session")
def digits_ref(digits_model, digits_test):
    from resnet_deploy.backend.runner import KerasRunner

    with KerasRunner(digits_model) as r:
        return r.predict(digits_test[0])


@pytest.fixture(scope="session")
def bundles(tmp_path_factory):
    """int8 digits bundles for every target (120 reference samples), made once per session."""
    from resnet_deploy.ship import bundle
    from resnet_deploy.requests import PackageRequest

    out = tmp_path_factory.mktemp("bundles")
    made = bundle.package(PackageRequest(targets="tflite,onnx,openvino", precision="int8", n=120, threads=2, out=out))
    assert made.ok, made.refused
    return {b.target: b.to_dict() for b in made.packaged}


@pytest.fixture(scope="session")
def arm_bundles(tmp_path_factory):
    """digits bundles built with --device arm64: TFLite int8 and fp32, ONNX int8, OpenVINO int8
    (test_arm, test_fleet), made once per session."""
    from cli import main

    out = tmp_path_factory.mktemp("arm")
    for targets, precision in (("tflite,onnx,openvino", "int8"), ("tflite", "fp32")):
        try:
            main(
                [
                    "package",
                    "--model",
                    "digits",
                    "--targets",
                    targets,
                    "--precision",
                    precision,
                    "--n",
                    "20",
                    "--device",
                    "arm64",
                    "--out",
                    str(out),
                ]
            )
        except SystemExit as e:
            assert not e.code
    return out / "bundles"


@pytest.fixture
def tmpfs(tmp_path):
    """tmpfs(name, size) -> a folder that is a tmpfs of that size ("64k"): a disk that fills up.
    Needs mount rights (CI has them); without them the test is skipped, saying why."""
    import subprocess

    mounted = []

    def make(name: str, size: str):
        mnt = tmp_path / name
        mnt.mkdir()
        if subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)], capture_output=True
        ).returncode:
            pytest.skip("cannot mount a tmpfs here (no mount rights): the full-disk cases need one")
        mounted.append(mnt)
        return mnt

    yield make
    for mnt in mounted:
        subprocess.run(["umount", str(mnt)], check=False)
