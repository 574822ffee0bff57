"""The regression gate: records from real parity + bench runs, compared with tolerances."""

from __future__ import annotations

import copy
import json

import pytest

from resnet_deploy.evaluate.gate import GATE_TOLERANCES, compare, record
from tests.support.cli import run_cli


def _runs(acc=0.99, agree=0.995, sqnr=25.0, p50=0.5, keras=1.0):
    parity = {
        "model": "m",
        "samples": 450,
        "data": {"source": {"kind": "digits"}},
        "results": [
            {"name": "onnx/int8", "ok": True, "metrics": {"accuracy": acc, "top1_agreement": agree, "sqnr_db": sqnr}}
        ],
    }
    bench = {
        "model": "m",
        "rows": [
            {"backend": "keras", "precision": "fp32", "threads": 2, "batch": 1, "p50": keras},
            {"backend": "onnx", "precision": "int8", "threads": 2, "batch": 1, "p50": p50},
        ],
    }
    return parity, bench


def _verdicts(base_kw, cur_kw):
    rows = compare(record(*_runs(**base_kw)), record(*_runs(**cur_kw)))
    return {r["metric"]: r["ok"] for r in rows}


def test_latency_is_compared_as_a_ratio_within_each_run():
    # the current machine is twice as slow for everything: no regression
    assert all(_verdicts({}, {"p50": 1.0, "keras": 2.0}).values())
    # the artifact alone got 20% slower relative to Keras: a regression; 10%: not
    assert not _verdicts({}, {"p50": 0.6})["latency_ratio"]
    assert _verdicts({}, {"p50": 0.55})["latency_ratio"]


@pytest.mark.parametrize(
    "metric,kw,limit", [("accuracy", "acc", "accuracy"), ("top1_agreement", "agree", "top1_agreement")]
)
def test_quality_drops_beyond_the_tolerance_fail(metric, kw, limit):
    pts = GATE_TOLERANCES[limit][0]
    assert _verdicts({}, {kw: _runs()[0]["results"][0]["metrics"][metric] - (pts + 0.2) / 100})[metric] is False
    assert _verdicts({}, {kw: _runs()[0]["results"][0]["metrics"][metric] - (pts - 0.2) / 100})[metric] is True


def test_sqnr_drop_and_a_missing_backend_fail():
    assert not _verdicts({}, {"sqnr": 23.5})["sqnr_db"]
    base, cur = record(*_runs()), record(*_runs())
    cur["entries"] = {}
    assert [r["metric"] for r in compare(base, cur) if not r["ok"]] == ["present"]


@pytest.fixture(scope="module")
def gate_ws(tmp_path_factory):
    return tmp_path_factory.mktemp("gate")


def _gate(capsys, ws, *extra, out="out", base="base.json"):
    return run_cli(
        capsys,
        "gate",
        "--baseline",
        str(ws / base),
        "--targets",
        "onnx",
        "--n",
        "60",
        "--seconds",
        "0.5",
        "--warmup-s",
        "0.2",
        "--out",
        str(ws / out),
        *extra,
    )


def test_first_run_writes_the_baseline_then_the_same_build_passes(gate_ws, capsys):
    code, out, err = _gate(capsys, gate_ws, "--update-baseline", out="first", base="first.json")
    assert code == 0 and "first run" in out, err
    base = json.loads((gate_ws / "first.json").read_text())
    assert base["entries"]["onnx/int8"]["accuracy"] > 0.9 and base["entries"]["onnx/int8"]["latency_ratio"] > 0
    # the same run's record as --current passes (digits runs in a fraction of a millisecond: its latency ratio
    # is noise between runs, see GATE_TOLERANCES, so the real regression below is one of quality)
    record = gate_ws / "first" / "digits" / "gate-record.json"
    code, out, err = run_cli(
        capsys,
        "gate",
        "--baseline",
        str(gate_ws / "first.json"),
        "--current",
        str(record),
        "--out",
        str(gate_ws / "first"),
    )
    assert code == 0, err
    assert "PASS" in out and "onnx/int8 | accuracy" in out and "onnx/int8 | latency_ratio" in out


def test_a_real_quality_regression_fails_and_leaves_the_baseline(gate_ws, capsys):
    """An int8 artifact calibrated on 2 random images instead of 200 digits is a real regression."""
    if not (gate_ws / "base.json").exists():
        assert _gate(capsys, gate_ws, "--update-baseline")[0] == 0
    before = (gate_ws / "base.json").read_bytes()
    code, out, err = _gate(
        capsys,
        gate_ws,
        "--calib",
        "synthetic",
        "--calib-size",
        "2",
        "--update-baseline",
        "--max-latency-regression",
        "1000",
        out="regressed",
    )
    cur = json.loads((gate_ws / "regressed" / "digits" / "gate.json").read_text())
    failed = {r["metric"] for r in cur["rows"] if not r["ok"]}
    assert code == 5 and failed & {"accuracy", "sqnr_db", "top1_agreement"}, (code, out, err)
    assert "FAIL" in out and err.count("error:") == 1 and "error: regression against" in err
    assert (gate_ws / "base.json").read_bytes() == before  # a failing run never becomes the baseline


def test_bad_baselines_are_one_line(gate_ws, capsys, tmp_path):
    other = tmp_path / "other.json"
    if not (gate_ws / "base.json").exists():
        assert _gate(capsys, gate_ws, "--update-baseline")[0] == 0
    base = json.loads((gate_ws / "base.json").read_text())
    cases = {
        "missing": (None, "does not exist"),
        "not json": ("{", "is not valid JSON"),
        "wrong version": ({**base, "schema_version": 99}, "schema version"),
        "another model": ({**base, "model": "resnet18"}, "made for model 'resnet18'"),
        "wrong shape": ({**base, "entries": []}, "is not a resnet-deploy gate"),
    }
    for name, (content, words) in cases.items():
        if content is not None:
            other.write_text(content if isinstance(content, str) else json.dumps(content))
        elif other.exists():
            other.unlink()
        current = copy.deepcopy(base)
        (tmp_path / "cur.json").write_text(json.dumps(current))
        code, out, err = run_cli(
            capsys,
            "gate",
            "--baseline",
            str(other),
            "--current",
            str(tmp_path / "cur.json"),
            "--out",
            str(tmp_path / "o"),
        )
        assert code == 2 and words in err and err.count("\n") == 1 and "Traceback" not in err, (name, err)


def test_the_baseline_is_replaced_atomically_or_not_at_all(tmp_path, capsys, monkeypatch):
    """--update-baseline after a passing run: the new record replaces the old in one rename; if the
    rename fails (a full disk), the old baseline is exactly as it was and no temp file is left."""
    import errno
    import os

    from resnet_deploy.store import fsutil

    base, cur = record(*_runs()), record(*_runs(acc=0.995))
    (tmp_path / "base.json").write_text(json.dumps(base))
    (tmp_path / "cur.json").write_text(json.dumps(cur))
    before = (tmp_path / "base.json").read_bytes()
    real_replace = os.replace

    def full_at_the_baseline(src, dst):
        if str(dst) == str(tmp_path / "base.json"):
            raise OSError(errno.ENOSPC, "No space left on device", src)
        return real_replace(src, dst)

    monkeypatch.setattr(fsutil.os, "replace", full_at_the_baseline)
    args = [
        "gate",
        "--baseline",
        str(tmp_path / "base.json"),
        "--current",
        str(tmp_path / "cur.json"),
        "--update-baseline",
        "--out",
        str(tmp_path / "out"),
    ]
    code, _, err = run_cli(capsys, *args)
    assert code == 7 and f"could not write '{tmp_path / 'base.json'}'" in err, err
    assert (tmp_path / "base.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base.json", "cur.json", "out"]
    monkeypatch.undo()
    code, _, err = run_cli(capsys, *args)
    assert code == 0, err
    assert json.loads((tmp_path / "base.json").read_text())["entries"] == cur["entries"]
