"""The export schedule: ONNX's int8 quantization in a worker process beside the OpenVINO export
(exporting/schedule.py; OpenVINO with its own calibration pass, NNCF's). Same bytes as the inline export,
errors back as the target's one-line failure, no process outliving its export."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from resnet_deploy.exporting import schedule as background

from resnet_deploy.exporting import pipeline
from resnet_deploy.config import ExportConfig, QuantConfig
from resnet_deploy.errors import ExportError
from resnet_deploy.backend.target import Tail, get_target
from resnet_deploy.store.workspace import Workspace

REPO = Path(__file__).resolve().parents[2]


def _names(targets: list) -> list[str]:
    return [t.name for t in targets]


NNCF = {"openvino_int8": "nncf"}  # OpenVINO's own calibration pass, which runs beside ORT's


def test_the_plan_puts_a_tail_first_and_only_light_targets_beside_it(monkeypatch):
    int8, fp32 = ExportConfig(precision="int8", options=NNCF), ExportConfig(precision="fp32")
    all3 = [get_target(n) for n in ("tflite", "onnx", "openvino")]
    order, worker = background.plan(all3, int8)
    assert (_names(order), worker) == (["onnx", "openvino", "tflite"], True)
    order, worker = background.plan(all3, fp32)  # no tail in fp32: as given
    assert (_names(order), worker) == (["tflite", "onnx", "openvino"], False)
    order, worker = background.plan([get_target("tflite"), get_target("onnx")], int8)  # nothing light to run beside
    assert (_names(order), worker) == (["onnx", "tflite"], False)  # the tail first still: TFLite takes its ranges
    monkeypatch.setenv(background.ENV, "0")  # the escape hatch
    order, worker = background.plan(all3, int8)
    assert (_names(order), worker) == (["onnx", "openvino", "tflite"], False)


def test_the_worker_gives_the_inline_exports_bytes_and_says_it_ran(digits_model, digits_calib, tmp_path):
    config = ExportConfig(precision="int8", options=NNCF)
    both = pipeline.export_model(
        pipeline.Loaded.of("digits", digits_model, digits_calib),
        ["openvino", "onnx"],
        config,
        Workspace(tmp_path / "both"),
    )
    alone = pipeline.export_model(
        pipeline.Loaded.of("digits", digits_model, digits_calib), ["onnx"], config, Workspace(tmp_path / "alone")
    )
    assert both.ok and alone.ok, (both.failures, alone.failures)
    assert [a.target for a in both.artifacts] == ["openvino", "onnx"]  # the order asked for, not the schedule's
    onnx = both.artifacts[1]
    assert "ONNX Runtime int8 quantization" in onnx.manifest["export"]["worker_process"]
    assert "worker_process" not in alone.artifacts[0].manifest["export"]
    assert onnx.model_file.read_bytes() == alone.artifacts[0].model_file.read_bytes()
    assert onnx.details["quantization"] == alone.artifacts[0].details["quantization"]
    assert onnx.details["layer_map"]["layers"]  # mapped after the worker's model came back
    onnx.verify()
    assert not multiprocessing.active_children()


def test_a_tail_error_comes_back_as_that_targets_one_line_failure(digits_model, digits_calib, tmp_path):
    config = ExportConfig(precision="int8", quant=QuantConfig(float_nodes=("no_such_node",)))
    res = pipeline.export_model(
        pipeline.Loaded.of("digits", digits_model, digits_calib), ["onnx", "openvino"], config, Workspace(tmp_path)
    )
    err = res.failures["onnx"]
    assert isinstance(err, ExportError) and "has no node 'no_such_node' to keep in float" in str(err)
    assert "\n" not in str(err)
    assert "openvino" in res.failures  # NNCF's ignored scope checks the name too
    assert not [p for p in tmp_path.rglob("*") if ".partial-" in p.name]
    assert not multiprocessing.active_children()


def _sleepy(progress: object, threads: int, seconds: float) -> dict:
    time.sleep(seconds)
    return {}


def _disk_full(progress: object, threads: int, path: str) -> dict:
    (Path(path) / "model.onnx").write_bytes(b"half")
    raise OSError(28, "No space left on device", str(Path(path) / "model.onnx"))


def test_a_full_disk_in_the_worker_comes_back_as_the_oserror_naming_the_file(tmp_path):
    """The CLI says "the disk is full" (exit 7) from an OSError with its file name: the worker's
    must arrive as one, not as a converter failure."""
    with background.Worker() as worker:
        worker.start(Tail("a full disk", _disk_full, {"path": str(tmp_path)}, dict), "onnx", "int8", tmp_path)
        with pytest.raises(OSError) as e:
            worker.result()
    assert (e.value.errno, e.value.filename) == (28, str(tmp_path / "model.onnx"))
    assert not (tmp_path / ".tmp").exists()  # its temporary folder went with it


def test_a_worker_that_dies_is_a_failure_not_a_hang(tmp_path):
    with background.Worker() as worker:
        worker.start(Tail("a dict", dict, {"x": 1}, dict), "t", "int8", tmp_path)
        got = worker.result()
        assert (got["x"], got["threads"]) == (1, background.WORKER_THREADS)
        worker.start(Tail("a dict", dict, {}, dict), "t", "int8", tmp_path)
        os.kill(worker._proc.pid, signal.SIGKILL)  # noqa: SLF001 - before it can answer
        with pytest.raises(
            ExportError,
            match=r"t int8 export failed: its worker process ended without a result "
            r"\(exit code -9",
        ):
            worker.result()
        worker.start(Tail("a nap", _sleepy, {"seconds": 60}, dict), "t", "int8", tmp_path)
        proc, t0 = worker._proc, time.monotonic()  # noqa: SLF001
    assert not proc.is_alive() and time.monotonic() - t0 < 10  # leaving the block stopped the tail still running


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _children(pid: int) -> list[int]:
    kids = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                stat = Path(f"/proc/{p}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(p))
    return kids


def test_the_worker_dies_with_a_killed_export_and_the_next_run_cleans_up(tmp_path):
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "cli.py",
        "export",
        "--model",
        "resnet18",
        "--input-size",
        "160",
        "--classes",
        "10",
        "--width",
        "16",
        "--target",
        "onnx,openvino",
        "--openvino-int8",
        "nncf",
        "--precision",
        "int8",
        "--calib-size",
        "600",
        "--out",
        str(out),
    ]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, workers = time.monotonic() + 300, []
    quantizing = False  # the worker's ORT quantizer has its temporary models in the staging folder
    while time.monotonic() < deadline and not quantizing:
        assert proc.poll() is None, "the export ended before its worker was killed"
        workers = workers or [
            k for k in _children(proc.pid) if b"spawn_main" in Path(f"/proc/{k}/cmdline").read_bytes()
        ]
        quantizing = bool(workers) and any(out.glob("resnet18/onnx/.int8.partial-*/.tmp/*"))
        time.sleep(0.05)
    assert quantizing, "the worker never got to quantize"
    nice = int(Path(f"/proc/{workers[0]}/stat").read_text().rsplit(")", 1)[1].split()[16])
    assert nice == min(19, os.nice(0) + background.WORKER_NICE)  # it yields the cores to the export beside it
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 2  # the kernel kills it at once (its tail alone takes longer than this)
    while time.monotonic() < deadline and _running(workers[0]):
        time.sleep(0.05)
    assert not _running(workers[0]), "the worker outlived the export"
    again = [*cmd[: cmd.index("--calib-size") + 1], "40", *cmd[cmd.index("--calib-size") + 2 :]]  # quicker, same dirs
    done = subprocess.run(again, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert not [p for p in out.rglob("*") if ".partial-" in p.name or ".old-" in p.name]
