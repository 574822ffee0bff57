"""The device-like virtualenvs are rebuilt when their pins change, and made with a Python the
runtime has wheels for."""

from __future__ import annotations

import sys

import pytest

from tests.support import devices


def test_a_venv_made_for_other_pins_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("RESNET_DEPLOY_DEVICE_VENVS", str(tmp_path))
    calls = []
    monkeypatch.setattr(devices.subprocess, "run", lambda cmd, check: calls.append(cmd))
    venv = tmp_path / "onnxruntime"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("")
    (venv / ".complete").write_text(devices.record("onnxruntime"))
    assert devices.ensure("onnxruntime") == venv / "bin" / "python" and calls == []  # up to date: reused
    (venv / ".complete").write_text("numpy onnxruntime==1.0.0\n")  # made for another runtime version
    devices.ensure("onnxruntime")
    assert [c[1:3] for c in calls] == [["-m", "venv"], ["-m", "pip"]]
    assert calls[1][-len(devices.DEVICES["onnxruntime"]) :] == devices.DEVICES["onnxruntime"]
    assert (venv / ".complete").read_text() == devices.record("onnxruntime")


def test_the_tflite_runtime_device_gets_a_python_it_has_wheels_for(monkeypatch):
    if sys.version_info[:2] <= (3, 11):
        assert devices.base_python("tflite-runtime") == sys.executable
    monkeypatch.setattr(devices.sys, "version_info", (3, 13, 0))
    monkeypatch.setattr(devices.shutil, "which", lambda name: "/opt/py310" if name == "python3.10" else None)
    assert devices.base_python("tflite-runtime") == "/opt/py310"
    assert devices.base_python("onnxruntime") == sys.executable
    monkeypatch.setattr(devices.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="needs Python <= 3.11"):
        devices.base_python("tflite-runtime")
