"""Latency protocol, bench command and the HTML report (rendered in headless Chromium)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time

import numpy as np
import pytest

from resnet_deploy.measure.latency import Protocol, measure
from resnet_deploy.backend.runner import Runner
from tests.support.cli import run_cli


class SleepyRunner(Runner):
    """prepare() is slow, run_raw() is fast: the protocol must time run_raw only."""

    name = "sleepy"

    def activate_impl(self):
        self.input_shape = (None, 4)
        self.calls = 0

    def prepare(self, x):
        time.sleep(0.02)
        return x

    def infer_impl(self, x):
        self.calls += 1
        time.sleep(0.001)
        return x


def test_protocol_times_the_runtime_call_only_and_meets_minimums():
    r = SleepyRunner().activate()
    s = measure(r, np.zeros((1, 4), np.float32), Protocol(warmup_runs=10, warmup_s=0.05, runs=50, seconds=0.2))
    assert s.runs >= 50
    assert r.calls >= 1 + 10 + s.runs  # first + warm-up + measured
    assert 1.0 <= s.p50 < 10.0  # 1 ms sleep, not the 20 ms prepare
    assert s.p50 <= s.p90 <= s.p99 and s.min <= s.p50
    assert s.throughput == pytest.approx(1000 / s.mean)
    assert s.peak_rss_mb > 10


def test_bench_command_times_every_backend_with_the_threads_asked(tmp_path, capsys):
    code, out, err = run_cli(
        capsys,
        "bench",
        "--targets",
        "all",
        "--precision",
        "int8",
        "--threads",
        "1",
        "--warmup-s",
        "0.1",
        "--seconds",
        "0.2",
        "--out",
        str(tmp_path),
        "--json",
    )
    assert code == 0, err
    res = json.loads(out)
    rows = res["rows"]
    assert [(r["backend"], r["precision"]) for r in rows] == [
        ("keras", "fp32"),
        ("tflite", "int8"),
        ("onnx", "int8"),
        ("openvino", "int8"),
    ]
    for r in rows:
        assert r["threads"] == 1 and r["threads_used"] == 1, r
        assert r["runs"] >= 50 and 0 < r["p50"] <= r["p90"] <= r["p99"]
        assert r["size_mb"] > 0 and r["peak_rss_mb"] > 0 and r["load_ms"] > 0 and r["first_ms"] > 0
        assert r["speedup_vs_keras"] == pytest.approx(rows[0]["p50"] / r["p50"])
    # a TF-free runtime process is far smaller than the Keras one: RSS is per process
    assert rows[1]["peak_rss_mb"] < rows[0]["peak_rss_mb"]
    assert (tmp_path / "digits" / "bench.json").is_file()


def test_bench_rejects_bad_threads(tmp_path, capsys):
    code, _, err = run_cli(capsys, "bench", "--threads", "two", "--out", str(tmp_path))
    assert code == 2 and "comma list of integers" in err


def test_report_without_runs_is_a_clear_error(tmp_path, capsys):
    code, _, err = run_cli(capsys, "report", "--out", str(tmp_path))
    assert code == 2 and f"No results under {str(tmp_path)!r}; run `parity`" in err
    code, _, err = run_cli(capsys, "report", "--model", "digits", "--out", str(tmp_path))
    assert code == 2 and "run `parity --model digits`" in err


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_report_renders_offline_in_headless_chromium(tmp_path, capsys):
    out = tmp_path / "art"
    assert (
        run_cli(capsys, "parity", "--targets", "tflite,onnx", "--precision", "int8", "--n", "100", "--out", str(out))[0]
        == 0
    )
    assert (
        run_cli(
            capsys,
            "bench",
            "--targets",
            "tflite,onnx",
            "--precision",
            "int8",
            "--threads",
            "1",
            "--warmup-s",
            "0.1",
            "--seconds",
            "0.2",
            "--out",
            str(out),
        )[0]
        == 0
    )
    code, stdout, err = run_cli(capsys, "report", "--out", str(out), "--json")
    assert code == 0, err
    (paths,) = json.loads(stdout)["reports"]
    assert sorted(paths["images"]) == ["accuracy_vs_latency.png", "latency.png", "speedup.png"]
    html = open(paths["html"]).read()
    assert "http://" not in html and "https://" not in html  # nothing to fetch: works offline
    md = open(paths["markdown"]).read()
    assert "| tflite/int8 | int8 |" in md and "| onnx | int8 |" in md
    chromium = _chromium()
    head = md.split("### ")[1]  # the summary comes first in report.md too
    assert head.startswith("Summary") and "| tflite/int8 | pass |" in head and "| onnx/int8 | pass |" in head
    if chromium is None:
        pytest.skip("chromium is not installed (.ci/run installs Debian's chromium)")
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=5000",
    ]
    dom = subprocess.run(
        [chromium, *flags, "--dump-dom", f"file://{paths['html']}"], capture_output=True, text=True, timeout=120
    ).stdout
    assert 'data-images-ok="3"' in dom and 'data-images-total="3"' in dom, dom[-500:]
    assert dom.count("<table>") >= 3 and "tflite/int8" in dom
    # the first screen (1280x800) holds the summary: verdict, machine and date before any chart or long table
    assert int(re.search(r'data-summary-bottom="(\d+)"', dom).group(1)) <= 800, dom[:2000]
    assert dom.index("PASS: all 2 artifacts match Keras") < dom.index("<img") < dom.index("<h2>Parity: ")
    assert "Machine: " in dom and "Made 20" in dom and "UTC" in dom
    for size in re.search(r'data-image-sizes="([^"]+)"', dom).group(1).split(","):  # drawn large enough to read
        w, h = map(int, size.split("x"))
        assert h >= 250 and w >= 400 and w / h <= 4, size
    shot = tmp_path / "shot.png"
    subprocess.run(
        [chromium, *flags, "--window-size=1280,800", f"--screenshot={shot}", f"file://{paths['html']}"],
        capture_output=True,
        timeout=120,
    )
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("RGB"))
    assert img.shape[:2] == (800, 1280)
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 50  # charts and tables, not a blank page
    green = (img[..., 1] > 100) & (img[..., 0] < 60) & (img[..., 2] < 60)
    assert green.sum() > 20  # the summary's "pass" verdicts, in the first screen


def test_report_finds_a_model_files_results_by_its_stem(tmp_path, capsys):
    """`report --model some/dir/mine.h5` reads OUT/mine/, where parity and bench wrote them."""
    bench = {
        "model": "mine",
        "batch": 1,
        "protocol": {},
        "rows": [
            {
                "backend": "keras",
                "precision": "fp32",
                "threads": 1,
                "threads_used": 1,
                "load_ms": 1.0,
                "first_ms": 1.0,
                "p50": 2.0,
                "p90": 2.5,
                "p99": 3.0,
                "mean": 2.1,
                "std": 0.1,
                "throughput": 500.0,
                "peak_rss_mb": 100.0,
                "size_mb": 1.0,
                "speedup_vs_keras": 1.0,
            }
        ],
    }
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "bench.json").write_text(json.dumps(bench))
    code, out, err = run_cli(
        capsys, "report", "--model", str(tmp_path / "models" / "mine.h5"), "--out", str(tmp_path), "--json"
    )
    assert code == 0, err
    assert json.loads(out)["reports"][0]["html"] == str(tmp_path / "mine" / "report" / "index.html")
    (tmp_path / "other model").mkdir()  # without --model: every model with results, each its own page
    (tmp_path / "other model" / "bench.json").write_text(json.dumps({**bench, "model": "other model"}))
    (tmp_path / "bundles").mkdir()  # not a model
    code, out, err = run_cli(capsys, "report", "--out", str(tmp_path), "--dest", str(tmp_path / "pages"), "--json")
    assert code == 0, err
    made = json.loads(out)["reports"]
    assert [r["model"] for r in made] == ["mine", "other model"]
    for r in made:
        assert r["html"] == str(tmp_path / "pages" / r["model"] / "index.html")
        assert f"resnet-deploy report: {r['model']}" in open(r["html"]).read()
    (tmp_path / "mine" / "bench.json").write_text('{"model": "mine"}')  # not a bench result
    code, _, err = run_cli(capsys, "report", "--model", "mine", "--out", str(tmp_path))
    assert code == 2 and "is not a resnet-deploy bench (at the top level: 'batch' is a required property)" in err
