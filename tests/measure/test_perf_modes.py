"""Throughput mode, per-op profiles mapped to Keras layers, and what really runs in int8."""

from __future__ import annotations

import json
import re
import time

import pytest
from click.testing import CliRunner

from resnet_deploy.measure import throughput
from resnet_deploy.cli.main import cli
from resnet_deploy.measure.profiling import AFTER_LAST, layer_of_ops
from tests.support.cli import run_cli

QUICK = ["--seconds", "0.5", "--warmup-s", "0.2"]


def _cli(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


# --- the throughput driver ---------------------------------------------------------------------


@pytest.mark.parametrize("streams", [1, 4])
def test_driver_keeps_every_stream_busy_and_counts_after_the_warm_up(streams):
    """Workers that wait 10 ms without the GIL: N streams give N times one stream's rate."""
    calls = []

    def request():
        calls.append(time.perf_counter_ns())
        time.sleep(0.01)

    r = throughput.drive([request] * streams, batch=2, warmup_s=0.2, seconds=0.5, settings={})
    assert r["streams"] == streams and r["batch"] == 2
    assert 0.75 * streams * 200 < r["throughput"] < 1.05 * streams * 200, r  # 2 inferences per 10 ms per stream
    assert r["requests"] < len(calls)  # the warm-up's requests are not counted
    assert 9.5 < r["p50"] < 25, r


@pytest.mark.parametrize("streams", [1, 2])
def test_a_first_call_longer_than_the_warm_up_is_neither_counted_nor_waited_on(streams):
    """Each stream's first call takes 0.6 s (Keras tracing its graph), the next ones speed up from
    40 ms to 5 ms: warm-up is 0.1 s, but the window opens only once calls stop getting faster."""
    import threading

    per_stream: dict[int, int] = {}

    def request():
        i = per_stream[threading.get_ident()] = per_stream.get(threading.get_ident(), 0) + 1
        time.sleep(0.6 if i == 1 else max(0.005, 0.04 * 0.7 ** (i - 2)))

    r = throughput.drive([request] * streams, batch=1, warmup_s=0.1, seconds=0.4, settings={})
    assert r["steady"] and r["warmup_calls"] >= 8 * streams and r["warmup_s"] >= 0.6, r
    assert 4.5 < r["p50"] < 12 and r["p90"] < 16, r  # the slow warm-up calls are not in the percentiles
    assert r["throughput"] > 0.6 * streams * 200, r  # ~200/s per stream once steady


def test_a_warm_up_that_never_settles_stops_at_the_cap_and_says_so(monkeypatch):
    monkeypatch.setattr(throughput, "MAX_WARMUP", (1.0, 0.2))
    n = [0]

    def request():
        n[0] += 1
        time.sleep(0.05 * 0.9 ** n[0])  # every call faster than the last: never steady

    r = throughput.drive([request], batch=1, warmup_s=0.1, seconds=0.2, settings={})
    assert r["steady"] is False and 0.2 <= r["warmup_s"] < 0.6, r


# --- mapping executed ops to Keras layers ------------------------------------------------------


def test_ops_belong_to_the_first_layer_whose_tensor_they_produce():
    # x -> conv(w) -> bn -> relu = "a"; a -> conv2 -> "b"; a + b -> add = "c"; c -> dq (after the last layer)
    ops = [
        ("w_dq", ["w"], ["w_f"]),
        ("conv", ["x", "w_f"], ["conv_o"]),
        ("bn", ["conv_o"], ["bn_o"]),
        ("relu", ["bn_o"], ["a"]),
        ("conv2", ["a"], ["b"]),
        ("add", ["a", "b"], ["c"]),
        ("dq", ["c"], ["y"]),
    ]
    owner = layer_of_ops(ops, {"layers": {"relu_a": "a#3", "conv_b": "b", "add_c": "c"}})
    assert owner == {
        "relu": "relu_a",
        "bn": "relu_a",
        "conv": "relu_a",
        "w_dq": "relu_a",
        "conv2": "conv_b",
        "add": "add_c",
    }
    assert "dq" not in owner  # reported as AFTER_LAST by by_layer
    assert AFTER_LAST.startswith("(")


# --- the commands ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ws(bundles):
    """The session's digits workspace: its int8 artifacts of every target are already exported."""
    from pathlib import Path

    return Path(bundles["onnx"]["bundle"]).parents[1]


def test_throughput_mode_measures_every_backend_at_every_batch(ws):
    r = _cli(
        "bench",
        "--mode",
        "throughput",
        "--batch",
        "1,4",
        "--targets",
        "all",
        "--precision",
        "int8",
        "--no-keras",
        *QUICK,
        "--out",
        ws,
    )
    assert r.exit_code == 0, r.output
    result = json.loads((ws / "digits" / "throughput.json").read_text())
    rows = {(x["backend"], x["batch"]): x for x in result["rows"]}
    assert set(rows) == {(b, n) for b in ("tflite", "onnx", "openvino") for n in (1, 4)}
    for (backend, batch), row in rows.items():
        assert row["throughput"] > 0 and row["requests"] >= throughput.MIN_REQUESTS_PER_STREAM * row["streams"]
        assert row["p50"] <= row["p99"]
    ov = rows[("openvino", 4)]["settings"]  # read back from the compiled model, not what we asked for
    assert "THROUGHPUT" in ov["how"] and ov["infer_requests"] >= 1 and ov["streams"] >= 1
    assert rows[("onnx", 1)]["streams"] == rows[("tflite", 1)]["streams"] == 2  # --threads 2: two streams
    assert "Throughput: digits" in r.output and "AsyncInferQueue" in r.output
    report = _cli("report", "--out", ws, "--json")
    assert report.exit_code == 0 and "throughput.png" in json.loads(report.output)["reports"][0]["images"], (
        report.output
    )


def test_latency_mode_takes_one_batch(ws, capsys):
    code, out, err = run_cli(capsys, "bench", "--batch", "1,8", "--out", str(ws))
    assert code == 2 and "--mode throughput" in err and "Traceback" not in err, err


COMPUTE_OP = re.compile(r"\((QLinearConv|ConvInteger|Conv|Convolution|QGemm|Gemm|MatMul\w*|FullyConnected\w*)\)$")


def test_profile_maps_each_runtime_op_to_a_keras_layer_and_says_where_it_cannot(ws, digits_model):
    r = _cli("bench", "--targets", "all", "--precision", "int8", "--profile", "--no-keras", *QUICK, "--out", ws)
    assert r.exit_code == 0, r.output
    prof = json.loads((ws / "digits" / "profile.json").read_text())
    for target in ("onnx", "openvino"):
        b = prof["backends"][f"{target}/int8"]
        assert b["supported"], b
        assert abs(sum(x["pct"] for x in b["layers"]) - 100) < 1e-6
        lm = json.loads((ws / "digits" / target / "int8" / "manifest.json").read_text())["layer_map"]
        keras_layers = set(lm["layers"]) | set(lm.get("folded") or {})  # rows are named after a unit's first layer
        # structure, not shares of time: every convolution and matrix product the runtime ran is
        # charged to a Keras layer, and every Conv2D/Dense layer of the model has a row (or is folded into one)
        stray = [op for x in b["layers"] if x["layer"] not in keras_layers for op in x["ops"] if COMPUTE_OP.search(op)]
        assert not stray, (target, stray)
        rows = {x["layer"] for x in b["layers"]} | {f for x in b["layers"] for f in x["folded_in"]}
        heavy = {layer.name for layer in digits_model.layers if type(layer).__name__ in ("Conv2D", "Dense")}
        assert heavy <= rows, (target, heavy - rows)
        assert sum(COMPUTE_OP.search(op) is not None for x in b["layers"] for op in x["ops"]) >= len(heavy)
    assert not prof["backends"]["tflite/int8"]["supported"]
    assert "benchmark_model" in prof["backends"]["tflite/int8"]["why"]
    assert "Where the time goes" in r.output and "onnx/int8:" in r.output
    report = _cli("report", "--out", ws, "--json")
    assert report.exit_code == 0, report.output
    images = json.loads(report.output)["reports"][0]["images"]
    assert "time_per_layer.png" in images


def test_bench_counts_the_ops_each_runtime_executes_in_int8_and_in_float(ws):
    """ORT's S8S8 QDQ leaves convolutions in float on x86; U8S8 (our default there) does not:
    the op counts must show it."""
    r = _cli("export", "--target", "onnx", "--onnx-format", "qdq-s8s8", "--out", ws / "s8")
    assert r.exit_code == 0, r.output
    counts = {}
    for name, out, extra in (("u8s8", ws, []), ("s8s8", ws / "s8", ["--onnx-format", "qdq-s8s8"])):
        r = _cli("bench", "--targets", "onnx", "--precision", "int8", "--no-keras", *QUICK, *extra, "--out", out)
        assert r.exit_code == 0, r.output
        counts[name] = json.loads((out / "digits" / "bench.json").read_text())["rows"][0]["ops"]
    assert counts["u8s8"]["int8"] > 0 and counts["u8s8"]["float"] == 0, counts
    assert counts["s8s8"]["float_types"].get("Conv", 0) > 0, counts
    assert counts["s8s8"]["int8"] < counts["u8s8"]["int8"], counts


# --- agreement with OpenVINO's benchmark_app ---------------------------------------------------


def _benchmark_app(xml, *args) -> dict[str, str]:
    """benchmark_app's own read-back of the compiled model (its "Querying optimal runtime
    parameters" step) after a one-second run."""
    import shutil
    import subprocess

    exe = shutil.which("benchmark_app")
    assert exe, "benchmark_app comes with the openvino wheel"
    proc = subprocess.run(
        [exe, "-m", str(xml), "-d", "CPU", "-shape", "[1,32,32,3]", "-t", "1", "-infer_precision", "f32", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    step = proc.stdout.split("Querying optimal runtime parameters", 1)[1].split("[Step 9", 1)[0]
    found = re.findall(r"\[ INFO \]\s+([A-Z_]+): (.+)", step)
    return {k: v.strip() for k, v in found}


def test_openvino_latency_and_throughput_run_as_benchmark_app_configures_them(ws):
    """Our latency protocol is benchmark_app's `-hint none -nstreams 1 -nthreads N -api sync` and our
    throughput driver its `-hint throughput -api async`: the compiled models agree on streams,
    threads, infer requests and precision (the timing comparison is benchmarks/benchmark_app_fidelity.py)."""
    import numpy as np

    from resnet_deploy.targets.openvino import OpenVINORunner

    xml = ws / "digits" / "openvino" / "int8" / "model.xml"
    x = np.random.default_rng(0).random((1, 32, 32, 3), dtype=np.float32)
    with OpenVINORunner(xml, threads=2) as r:
        latency = dict(r.actual)
    with OpenVINORunner(xml) as r:  # every core, as benchmark_app takes without -nthreads
        settings = r.throughput(x, 0.1, 0.3, 0)["settings"]
    ba = _benchmark_app(xml, "-hint", "none", "-nstreams", "1", "-nthreads", "2", "-api", "sync")
    assert (
        (int(ba["NUM_STREAMS"]), int(ba["INFERENCE_NUM_THREADS"])) == (latency["streams"], latency["threads"]) == (1, 2)
    )
    assert "float32" in ba["INFERENCE_PRECISION_HINT"] and latency["inference_precision"] == "f32"
    ba = _benchmark_app(xml, "-hint", "throughput", "-api", "async")
    assert int(ba["NUM_STREAMS"]) == settings["streams"] and int(ba["INFERENCE_NUM_THREADS"]) == settings["threads"]
    assert int(ba["OPTIMAL_NUMBER_OF_INFER_REQUESTS"]) == settings["infer_requests"]
    assert ba["PERFORMANCE_HINT"] == "THROUGHPUT" and settings["inference_precision"] == "f32"
