"""OpenVINO's telemetry does not fork the exporting process (resnet_deploy/ov_telemetry.py)."""

from __future__ import annotations

import os

import pytest

from resnet_deploy import ov_telemetry
from resnet_deploy.config import ExportConfig
from resnet_deploy.backend.target import get_target


@pytest.fixture
def forks():
    count = [0]
    os.register_at_fork(after_in_parent=lambda: count.__setitem__(0, count[0] + 1))  # cannot be unregistered
    yield count
    count[0] = -(10**9)  # the hook stays: make later forks of this process count for nothing here


def test_an_openvino_export_sends_no_telemetry(digits_model, tmp_path, monkeypatch, forks):
    from openvino_telemetry import Telemetry

    monkeypatch.delenv("CI", raising=False)  # CI=true would silence OpenVINO's telemetry by itself
    monkeypatch.delenv(ov_telemetry.ENV, raising=False)
    sent = []
    for name in ov_telemetry._SENDERS:  # restored after the test; watched until the export silences them
        monkeypatch.setattr(Telemetry, name, lambda *a, _n=name, **k: sent.append(_n))
    get_target("openvino").export(digits_model, tmp_path, ExportConfig(precision="fp32"))
    assert sent == [] and forks[0] == 0
    assert all(getattr(Telemetry, n) is ov_telemetry._not_sent for n in ov_telemetry._SENDERS)


def test_opting_in_leaves_openvino_telemetry_as_it_is(monkeypatch):
    from openvino_telemetry import Telemetry

    mine = lambda *a, **k: None  # noqa: E731
    for name in ov_telemetry._SENDERS:
        monkeypatch.setattr(Telemetry, name, mine)
    monkeypatch.setenv(ov_telemetry.ENV, "1")
    ov_telemetry.silence()
    assert all(getattr(Telemetry, n) is mine for n in ov_telemetry._SENDERS)
