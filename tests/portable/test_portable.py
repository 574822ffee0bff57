"""The numpy-only core every bundle carries (metrics, checks, int8 I/O, integrity, protocol),
the tolerance overrides and the CLI's exit mapping: exact values, so that a changed operator,
constant or branch fails a test (benchmarks/mutation.py measures how many would)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re

import numpy as np
import pytest

from resnet_deploy.portable import constants as C
from resnet_deploy.portable import integrity, metrics, protocol, quantio


# --- metrics ---------------------------------------------------------------------------------


def test_compare_exact_values_on_a_small_case():
    ref = np.array([[1.0, 2.0], [3.0, 4.0]])
    out = np.array([[1.0, 2.0], [3.0, 5.0]])
    m = metrics.compare(ref, out, labels=np.array([1, 0]))
    assert m["max_abs"] == 1.0 and m["mean_abs"] == 0.25 and m["max_abs_rel"] == 0.25
    assert m["cosine"] == pytest.approx((1 + 4 + 9 + 20) / (math.sqrt(30) * math.sqrt(39)), abs=1e-15)
    assert m["sqnr_db"] == pytest.approx(10 * math.log10(30 / 1), abs=1e-12)
    assert m["top1_agreement"] == 1.0 and m["top5_overlap"] == 1.0
    assert m["accuracy"] == 0.5 and m["ref_accuracy"] == 0.5


def test_compare_identical_and_degenerate_outputs():
    ref = np.arange(12, dtype=np.float32).reshape(3, 4)
    same = metrics.compare(ref, ref.copy())
    assert same["max_abs"] == 0 and same["cosine"] == 1.0 and same["sqnr_db"] == float("inf")
    assert same["accuracy"] is None and same["ref_accuracy"] is None
    zeros = np.zeros((2, 3))
    z = metrics.compare(zeros, zeros)
    assert z["cosine"] == 1.0 and z["sqnr_db"] == float("inf")  # nothing to compare, nothing differs
    m = metrics.compare(zeros, np.ones((2, 3)))
    assert m["cosine"] == 0.0 and m["max_abs_rel"] == 1.0  # a zero reference: relative to 1.0
    with pytest.raises(ValueError, match=r"^output shape \(2, 4\) differs from reference \(2, 3\)$"):
        metrics.compare(zeros, np.zeros((2, 4)))


def test_noise_power_and_sqnr_with_larger_errors():
    ref = np.array([[3.0, 4.0]])
    m = metrics.compare(ref, np.array([[1.0, 4.0]]))  # error -2: noise 4, signal 25
    assert m["sqnr_db"] == pytest.approx(10 * math.log10(25 / 4), abs=1e-12) and m["max_abs"] == 2.0
    m = metrics.compare(ref, np.array([[5.0, 4.0]]))  # error +2: the same noise power
    assert m["sqnr_db"] == pytest.approx(10 * math.log10(25 / 4), abs=1e-12)


def test_compare_in_float64_even_for_half_precision_inputs():
    ref = np.full((1, 2), 60000, np.float16)
    m = metrics.compare(ref, ref)
    assert m["sqnr_db"] == float("inf") and m["cosine"] == pytest.approx(1.0, abs=1e-12)  # f16 sums overflow


def test_classifier_metrics_only_for_class_scores():
    assert metrics.is_classifier_output(np.zeros((4, 2)))
    assert not metrics.is_classifier_output(np.zeros((4, 1)))
    assert not metrics.is_classifier_output(np.zeros((4, 2, 2)))
    fmap = metrics.compare(np.ones((2, 1)), np.ones((2, 1)), labels=np.array([0, 0]))
    assert fmap["top1_agreement"] is None and fmap["top5_overlap"] is None and fmap["accuracy"] is None


def test_top1_and_top5_on_a_constructed_case():
    ref = np.tile(np.arange(10, dtype=float), (2, 1))  # top-5 of each row: classes 9..5
    out = ref.copy()
    out[0, 4] = 100.0  # sample 0: class 4 enters the top-5 (and becomes top-1), class 5 leaves it
    m = metrics.compare(ref, out, labels=np.array([9, 4]))
    assert m["top1_agreement"] == 0.5
    assert m["top5_overlap"] == pytest.approx((4 / 5 + 5 / 5) / 2)
    assert m["accuracy"] == 0.0 and m["ref_accuracy"] == 0.5


def test_acc_drop():
    assert metrics.acc_drop({"accuracy": 0.9, "ref_accuracy": 0.95}) == pytest.approx(5.0)
    assert metrics.acc_drop({"accuracy": 0.97, "ref_accuracy": 0.95}) == pytest.approx(-2.0)
    assert metrics.acc_drop({"accuracy": None, "ref_accuracy": 0.95}) is None
    assert metrics.acc_drop({"accuracy": 0.9, "ref_accuracy": None}) is None
    assert metrics.acc_drop({}) is None
    assert metrics.acc_drop({"accuracy": 0.995, "ref_accuracy": 1.0}) == pytest.approx(0.5)  # not rounded to points
    assert metrics.acc_drop({"accuracy": 0.0, "ref_accuracy": 1.5e-11}) == round(1.5e-9, 9)  # 1e-9-point grid


BASE = {
    "max_abs_rel": 0.1,
    "cosine": 0.99,
    "sqnr_db": 30.0,
    "top1_agreement": 0.97,
    "accuracy": 0.9,
    "ref_accuracy": 0.91,
}
TOL = {"max_abs_rel": 0.1, "cosine_min": 0.99, "sqnr_min_db": 30.0, "top1_min": 0.97, "acc_drop_max": 1.0}


def test_check_passes_exactly_at_every_limit():
    assert metrics.check(BASE, TOL) == []  # every value on its limit, acc_drop 1.0 points included
    assert metrics.check({"accuracy": 0.93, "ref_accuracy": 0.95}, {"acc_drop_max": 2.0}) == []


@pytest.mark.parametrize(
    "metric,field,bad",
    [
        ("max_abs_rel", "max_abs_rel", 0.1000001),
        ("cosine", "cosine_min", 0.9899999),
        ("sqnr_db", "sqnr_min_db", 29.99),
        ("top1_agreement", "top1_min", 0.9699),
        ("acc_drop", "acc_drop_max", None),
    ],
)
def test_check_names_each_breach(metric, field, bad):
    m = dict(BASE, **({metric: bad} if bad is not None else {"accuracy": 0.89}))
    (b,) = metrics.check(m, TOL)
    kind = "max" if field in ("max_abs_rel", "acc_drop_max") else "min"
    value = bad if bad is not None else pytest.approx(2.0)
    assert b == {"metric": metric, "value": value, "limit": TOL[field], "kind": kind}


def test_check_nan_never_passes_and_none_is_not_checked():
    (b,) = metrics.check(dict(BASE, cosine=float("nan")), TOL)
    assert b["metric"] == "cosine" and b["value"] != b["value"]
    assert metrics.check(dict(BASE, cosine=None), TOL) == []
    assert metrics.check(dict(BASE, cosine=0.0), dict(TOL, cosine_min=None)) == []
    assert [b["metric"] for b in metrics.check(dict(BASE, max_abs_rel=float("nan")), TOL)] == ["max_abs_rel"]


def test_breach_text():
    assert (
        metrics.breach_text({"metric": "cosine", "value": 0.912345678, "limit": 0.9999999, "kind": "min"})
        == "cosine=0.912346 (limit >= 0.9999999)"
    )
    assert (
        metrics.breach_text({"metric": "acc_drop", "value": 2.5, "limit": 2.0, "kind": "max"})
        == "acc_drop=2.5 (limit <= 2)"
    )


# --- int8 I/O --------------------------------------------------------------------------------


def test_quantize_rounds_half_to_even_and_clips():
    x = np.array([-1000.0, -0.75, -0.25, 0.25, 0.75, 1.25, 1000.0], np.float32)
    q = quantio.quantize(x, 0.5, 3, np.int8)  # x / 0.5: -1.5 -> -2, -0.5 -> 0, 0.5 -> 0, 1.5 -> 2, 2.5 -> 2
    assert q.dtype == np.int8
    assert q.tolist() == [-128, 1, 3, 3, 5, 5, 127]
    assert quantio.quantize(np.array([-1.0, 300.0]), 1.0, 0, np.uint8).tolist() == [0, 255]


def test_float_and_unquantized_tensors_pass_through():
    x = np.array([0.5, -1.5], np.float32)
    assert quantio.quantize(x, 0.0, 0, np.float32) is x
    assert quantio.quantize(x, 0.1, 0, np.float32).tolist() == [0.5, -1.5]
    assert quantio.dequantize(x, 0.1, 5) is x
    y = np.array([3, -2], np.int8)
    assert quantio.dequantize(y, 0.0, 0).tolist() == [3.0, -2.0]


def test_dequantize_inverts_quantize():
    y = np.array([-128, -3, 0, 3, 127], np.int8)
    d = quantio.dequantize(y, 0.5, -3)
    assert d.dtype == np.float32 and d.tolist() == [-62.5, 0.0, 1.5, 3.0, 65.0]
    assert quantio.quantize(d, 0.5, -3, np.int8).tolist() == y.tolist()


# --- integrity -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["model.onnx", "rd_portable/metrics.py", "a/b/c.bin"])
def test_safe_member_names(name):
    assert integrity.check_member_name(name) == name


@pytest.mark.parametrize("name", ["", "/etc/passwd", "../x", "a/../../x", "a/./b", "a//b", "a\\b", "a/", None, 3])
def test_unsafe_member_names(name):
    with pytest.raises(integrity.BundleError, match="not a safe relative file name"):
        integrity.check_member_name(name)


def _bundle(tmp_path, files=None, schema=C.SCHEMA_VERSION, manifest=None):
    d = tmp_path / "b"
    (d / "sub").mkdir(parents=True)
    (d / "model.bin").write_bytes(b"weights")
    (d / "sub" / "x.py").write_text("print(1)\n")
    listed = files if files is not None else ["model.bin", "sub/x.py"]
    m = (
        manifest
        if manifest is not None
        else {
            "schema_version": schema,
            "bundle": "b",
            "files": {f: {"sha256": integrity.sha256_file(d / f) if (d / f).is_file() else "0" * 64} for f in listed},
        }
    )
    (d / C.MANIFEST).write_text(json.dumps(m) if not isinstance(m, str) else m)
    (d / C.MANIFEST_SUM).write_text(f"{integrity.sha256_file(d / C.MANIFEST)}  {C.MANIFEST}\n")
    return d


def test_sha256_file_is_hashlib():
    p = __file__
    assert integrity.sha256_file(p) == hashlib.sha256(open(p, "rb").read()).hexdigest()


def test_verify_bundle_accepts_an_intact_bundle(tmp_path):
    m = integrity.verify_bundle(str(_bundle(tmp_path)))
    assert set(m["files"]) == {"model.bin", "sub/x.py"}


CHANGED = "manifest.json does not match manifest.sha256: the manifest was changed; re-run `package`."
WEIGHTZ = hashlib.sha256(b"weightz").hexdigest()[:12]
WEIGHTS = hashlib.sha256(b"weights").hexdigest()[:12]


@pytest.mark.parametrize(
    "damage,needle",
    [
        (
            lambda d: (d / C.MANIFEST_SUM).unlink(),
            r"^manifest.sha256 is missing: .*/b is not a complete resnet-deploy "
            r"bundle; re-run `package`.$",
        ),
        (lambda d: (d / C.MANIFEST).unlink(), r"^manifest.json is missing: "),
        (lambda d: (d / C.MANIFEST_SUM).write_text("0" * 64), "^" + re.escape(CHANGED) + "$"),
        (lambda d: (d / C.MANIFEST_SUM).write_text(""), "^" + re.escape(CHANGED) + "$"),
        (
            lambda d: (d / "model.bin").write_bytes(b"weightz"),
            f"^model.bin sha256 {WEIGHTZ}... does not match the manifest's {WEIGHTS}...: the file was changed or "
            r"corrupted; re-deploy the bundle.$",
        ),
        (
            lambda d: (d / "sub" / "x.py").unlink(),
            r"^sub/x.py listed in the manifest is missing or not a plain file; "
            r"re-deploy the bundle.$",
        ),
        (lambda d: ((d / "model.bin").unlink(), os.symlink("/etc/hostname", d / "model.bin")), "not a plain file"),
    ],
)
def test_verify_bundle_refuses_every_damage(tmp_path, damage, needle):
    d = _bundle(tmp_path)
    damage(d)
    with pytest.raises(integrity.BundleError, match=needle) as e:
        integrity.verify_bundle(str(d))
    assert e.value.exit_code == C.EXIT_INTEGRITY == 6


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        ({"schema": 1}, r"^bundle schema_version 1 is not 2; use the selftest.py of the resnet-deploy that wrote it.$"),
        ({"manifest": "{not json"}, r"^manifest.json is not valid JSON \(.*\); re-run `package`.$"),
        ({"manifest": "[1, 2]"}, "schema_version None is not 2"),
        ({"files": []}, r"^manifest.json lists no files; re-run `package`.$"),
        (
            {"files": ["../model.bin"]},
            r"^'../model.bin' listed in the manifest is not a safe relative file name; "
            r"re-run `package`.$",
        ),
    ],
)
def test_verify_bundle_refuses_bad_manifests(tmp_path, kwargs, needle):
    with pytest.raises(integrity.BundleError, match=needle):
        integrity.verify_bundle(str(_bundle(tmp_path, **kwargs)))


# --- latency protocol ------------------------------------------------------------------------


def test_time_calls_meets_the_minimums_and_computes_its_stats():
    calls = []
    stats = protocol.time_calls(calls.append, "x", 4, {"warmup_runs": 3, "warmup_s": 0.0, "runs": 7, "seconds": 0.0})
    assert stats["runs"] == 7 and len(calls) == 1 + 3 + 7 and set(calls) == {"x"}
    assert stats["batch"] == 4 and stats["throughput"] == pytest.approx(4 * 1000.0 / stats["mean"])
    assert stats["min"] <= stats["p50"] <= stats["p90"] <= stats["p99"] and stats["std"] >= 0
    assert stats["first_ms"] >= 0 and stats["peak_rss_mb"] > 1


def test_time_calls_runs_for_the_minimum_time_and_caps_runs():
    import time

    t0 = time.perf_counter()
    stats = protocol.time_calls(
        lambda _: None, None, 1, {"warmup_runs": 1, "warmup_s": 0.05, "runs": 1, "seconds": 0.1, "max_runs": 10**9}
    )
    assert time.perf_counter() - t0 >= 0.15 and stats["runs"] > 100
    capped = protocol.time_calls(
        lambda _: None, None, 1, {"warmup_runs": 1, "warmup_s": 0.0, "runs": 1, "seconds": 10.0, "max_runs": 25}
    )
    assert capped["runs"] == 25


def test_first_call_and_times_are_milliseconds():
    import time

    state = {"n": 0}

    def run(_):
        state["n"] += 1
        if state["n"] == 1:
            time.sleep(0.02)

    s = protocol.time_calls(run, None, 1, {"warmup_runs": 1, "warmup_s": 0.0, "runs": 5, "seconds": 0.0})
    assert 20 <= s["first_ms"] < 500 and 0 <= s["p50"] < 5  # ms, and the slow first call is not in p50


def test_peak_rss_reads_vmhwm_and_falls_back_to_getrusage(monkeypatch):
    import builtins
    import io
    import resource

    real_open = builtins.open
    status = "Name:\tpython\nVmPeak:\t 9999 kB\nVmHWM:\t    2048 kB\n"
    monkeypatch.setattr(
        builtins, "open", lambda p, *a, **k: io.StringIO(status) if p == "/proc/self/status" else real_open(p, *a, **k)
    )
    assert protocol.peak_rss_mb() == 2.0

    def no_proc(p, *a, **k):
        if p == "/proc/self/status":
            raise OSError("no /proc")
        return real_open(p, *a, **k)

    class Usage:
        ru_maxrss = 4096

    monkeypatch.setattr(builtins, "open", no_proc)
    monkeypatch.setattr(resource, "getrusage", lambda who: Usage if who == resource.RUSAGE_SELF else None)
    assert protocol.peak_rss_mb() == 4.0


class FakeClock:
    """One fake timeline: every reading advances it one tick; perf_counter_ns reads a tick as
    1 ms, perf_counter as 1/1024 s (exact in binary, so boundaries are exact)."""

    def __init__(self) -> None:
        self.ticks = 0

    def perf_counter_ns(self) -> int:
        self.ticks += 1
        return self.ticks * 1_000_000

    def perf_counter(self) -> float:
        self.ticks += 1
        return self.ticks / 1024


def test_protocol_on_a_fake_clock_stops_exactly_at_its_minimums(monkeypatch):
    """Warm-up: >= 2 runs and until 5 ticks have passed; timed: >= 3 runs and 10 ticks. A loop
    that reaches its minimum time exactly stops there (`<`, not `<=`)."""
    monkeypatch.setattr(protocol, "time", FakeClock())
    calls = []
    s = protocol.time_calls(
        calls.append, 1, 1, {"warmup_runs": 2, "warmup_s": 5 / 1024, "runs": 3, "seconds": 10 / 1024}
    )
    assert s["first_ms"] == 1.0  # two readings around the first call: exactly 1 ms
    assert s["p50"] == 1.0 and s["min"] == 1.0 and s["std"] == 0.0  # every timed call: one tick
    assert (len(calls), s["runs"]) == (11, 4)  # 1 first + 6 warm-up + 4 timed


def test_stats_percentiles_of_known_times():
    s = protocol._stats([1_000_000 * i for i in range(1, 101)], 5.0, 2)
    assert s["p50"] == pytest.approx(50.5) and s["p90"] == pytest.approx(90.1) and s["p99"] == pytest.approx(99.01)
    assert s["mean"] == pytest.approx(50.5) and s["min"] == 1.0 and s["first_ms"] == 5.0
    assert s["throughput"] == pytest.approx(2000 / 50.5) and s["runs"] == 100


def test_the_shared_constants():
    assert (C.EXIT_OK, C.EXIT_ERROR, C.EXIT_INPUT, C.EXIT_EXPORT, C.EXIT_RUNTIME, C.EXIT_PARITY, C.EXIT_INTEGRITY) == (
        0,
        1,
        2,
        3,
        4,
        5,
        6,
    )
    assert C.DEFAULT_PROTOCOL == {"warmup_runs": 10, "warmup_s": 1.0, "runs": 50, "seconds": 2.0, "max_runs": 100000}
    from resnet_deploy.measure.latency import Protocol

    assert Protocol().__dict__ == C.DEFAULT_PROTOCOL  # the host's defaults are the device's
