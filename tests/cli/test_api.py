"""The Python API: every command's function from `resnet_deploy`, loaded lazily."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import resnet_deploy
from resnet_deploy.errors import InputError

COMMANDS = ("export", "parity", "bench", "diagnose", "package", "deploy", "gate", "report", "verify")


def test_every_command_is_one_function_and_naming_them_loads_no_framework():
    code = (
        "import sys\nfrom resnet_deploy import " + ", ".join(COMMANDS) + ", ModelRef, ExportRequest\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'onnxruntime', 'openvino', 'nncf') if m in sys.modules]\n"
        "assert not heavy, heavy\nassert all(callable(f) for f in (" + ", ".join(COMMANDS) + "))"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert set(COMMANDS) <= set(dir(resnet_deploy))
    with pytest.raises(AttributeError):
        resnet_deploy.no_such_thing  # noqa: B018


def test_export_then_parity_from_python(tmp_path):
    """Keywords build the request; the results are the library's typed ones."""
    from resnet_deploy import export, parity

    result = export(targets="tflite", precision="fp32", out=tmp_path)
    assert result.ok and result.artifacts[0].model_file.is_file()
    report = parity(model="digits", targets="tflite", precisions="fp32", n=64, out=tmp_path)
    metrics = report.results[0].metrics
    assert report.ok and metrics.top1_agreement == pytest.approx(1.0) and np.isfinite(metrics.max_abs)


def test_a_request_and_its_fields_together_are_refused():
    from resnet_deploy import ExportRequest, export

    with pytest.raises(InputError, match="not both"):
        export(ExportRequest(), targets="onnx")


def test_python_m_resnet_deploy_is_the_cli():
    proc = subprocess.run([sys.executable, "-m", "resnet_deploy", "list"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "tflite" in proc.stdout and "openvino" in proc.stdout


PACKAGES = ("models", "inputs", "store", "backend", "exporting", "evaluate", "quantize", "measure", "ship", "reporting")


def test_every_package_has_a_small_public_face_that_loads_on_use():
    """Importing every package loads no framework; every name of each face resolves."""
    code = (
        "import importlib, sys\n"
        f"pkgs = [importlib.import_module('resnet_deploy.' + p) for p in {PACKAGES!r}]\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'onnxruntime', 'openvino', 'nncf') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "for p in pkgs:\n"
        "    assert 1 <= len(p.__all__) <= 12 and sorted(p.__all__) == dir(p), p.__name__\n"
        "    for name in p.__all__:\n"
        "        getattr(p, name)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
