"""The Python API: every command's function from `resnet_deploy`, loaded lazily."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import resnet_deploy
from resnet_deploy.errors import InputError

COMMANDS = ("export", "parity", "bench", "diagnose", "package", "deploy", "gate", "report", "verify", "matrix")


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


def test_bench_and_report_return_typed_results_that_read_back(tmp_path):
    """Each command's result is a class whose dict is the JSON it wrote, and reads back equal."""
    import json

    from resnet_deploy import bench, report
    from resnet_deploy.measure.bench import BenchResult
    from resnet_deploy.measure.latency import Protocol

    result = bench(
        targets="tflite", precisions="fp32", threads=(1,), protocol=Protocol(warmup_s=0.1, seconds=0.2), out=tmp_path
    )
    assert isinstance(result, BenchResult) and result.profile is None
    assert result.row("tflite", "fp32")["p50"] > 0 and result.row("onnx", "fp32") is None
    saved = json.loads((tmp_path / "digits" / "bench.json").read_text())
    assert saved == json.loads(json.dumps(result.to_dict())) and "profile" not in saved
    assert BenchResult.from_dict(saved) == BenchResult.from_dict(result.to_dict())
    made = report(out=tmp_path)
    assert [r.model for r in made.reports] == ["digits"] and made.reports[0].images


def test_fleet_and_deploy_results_keep_their_json_shape():
    from resnet_deploy.ship.deploy import DeployResult
    from resnet_deploy.ship.fleet_result import FleetResult

    rows = [{"host": "a", "ok": True}, {"host": "b", "ok": False}]
    fleet = FleetResult("b1", "inv.ini", "/opt/m", {"name": "ansible"}, rows, 1.5)
    assert (fleet.passed, fleet.failed, fleet.ok) == (1, 1, False)
    assert fleet.to_dict() == {
        "bundle": "b1",
        "inventory": "inv.ini",
        "to": "/opt/m",
        "engine": {"name": "ansible"},
        "hosts": rows,
        "seconds": 1.5,
        "passed": 1,
        "failed": 1,
        "ok": False,
    }
    dev = DeployResult({"ok": True, "exit_code": 0, "metrics": {"cosine": 1.0}}, {"arch": "x86_64"}, "/d", 0.5)
    assert dev.ok and dev.to_dict() == {
        "ok": True,
        "exit_code": 0,
        "metrics": {"cosine": 1.0},
        "probe": {"arch": "x86_64"},
        "deploy_seconds": 0.5,
        "to": "/d",
    }


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
