"""OpenVINO int8 from the same export's ONNX int8 model (targets/openvino/from_onnx.py): one
calibration pass; the IR computes what the ONNX model computes and passes parity; NNCF, saying
why, whenever the ONNX model cannot be taken."""

from __future__ import annotations


import pytest

import resnet_deploy.targets.onnx
from resnet_deploy.exporting import schedule as background
from resnet_deploy.exporting import layermap
from resnet_deploy.exporting import pipeline
from resnet_deploy.config import ExportConfig, QuantConfig
from resnet_deploy.requests import ArtifactOptions
from resnet_deploy.errors import ExportError
from resnet_deploy.evaluate.parity import check, compare
from resnet_deploy.progress import Progress
from resnet_deploy.backend.exchange import NO_INT8_ONNX
from resnet_deploy.backend.target import get_target
from resnet_deploy.evaluate.tolerances import tolerance_for
from resnet_deploy.store.workspace import Workspace
from resnet_deploy.targets.openvino import from_onnx

INT8 = ExportConfig(precision="int8")


def _outputs(artifact, x):
    with get_target(artifact.target).runner(artifact, threads=2) as r:
        return r.predict(x)


def test_openvino_int8_is_the_onnx_int8_model_read_by_openvino(
    digits_model, digits_calib, digits_test, digits_ref, tmp_path, monkeypatch
):
    runs, real = [], layermap.keras_activations
    monkeypatch.setattr(layermap, "keras_activations", lambda *a: runs.append(1) or real(*a))
    loaded, ws = pipeline.Loaded.of("digits", digits_model, digits_calib), Workspace(tmp_path)
    # parity, bench and package get missing artifacts this way: exported together, as `export --target all`
    tflite, onnx, ov = pipeline.ensure_artifacts(ws, loaded, ["tflite", "onnx", "openvino"], "int8", Progress())
    assert len(runs) == 2  # ONNX's map runs Keras, TFLite's export drops it, TFLite's map runs it, OpenVINO's reuses
    assert tflite.details["quantization"]["calibrator"].startswith("shared: ONNX Runtime")  # one pass for all three
    q = ov.details["quantization"]
    assert ov.details["openvino"]["converted_from"] == "onnx int8 of this export"
    assert q["from_onnx_sha256"] == onnx.manifest["files"]["model.onnx"]["sha256"] and q["why"] == from_onnx.WHY
    assert q["reduce_range"] == onnx.details["quantization"]["reduce_range"]  # the ONNX model's device choices
    x, labels = digits_test
    ov_out, onnx_out = _outputs(ov, x), _outputs(onnx, x)
    # The same int8 model on two runtimes: 36.9 dB apart (a rounding step here and there), far
    # closer than either is to Keras (~23.5 dB). NNCF's IR of the same model is 19.8 dB from ORT's.
    assert compare(onnx_out, ov_out).sqnr_db >= 30.0
    m = compare(digits_ref, ov_out, labels)
    assert not check(m, tolerance_for("int8")), m  # the parity table's int8 row
    assert m.sqnr_db >= compare(digits_ref, onnx_out, labels).sqnr_db - 1.0

    def no_export(*args, **kwargs):
        raise AssertionError("an intact artifact was exported again")

    monkeypatch.setattr(pipeline, "export_model", no_export)
    again = pipeline.ensure_artifacts(ws, loaded, ["openvino", "onnx"], "int8", Progress())
    assert [a.model_file for a in again] == [ov.model_file, onnx.model_file]


def test_nncf_runs_when_asked_for_or_when_there_is_no_onnx_model_and_says_why(
    digits_model, digits_calib, tmp_path, monkeypatch
):
    nncf = ExportConfig(precision="int8", options={"openvino_int8": "nncf"})
    res = pipeline.export_model(
        pipeline.Loaded.of("digits", digits_model, digits_calib),
        ["onnx", "openvino"],
        nncf,
        Workspace(tmp_path / "asked"),
    )
    assert res.ok, res.failures
    q = res.artifacts[1].details["quantization"]
    assert (q["tool"], q["why"]) == ("nncf", "NNCF: --openvino-int8 nncf")
    assert res.artifacts[1].details["openvino"]["converted_from"] == "keras"

    def broken(**kwargs):
        raise ExportError("onnxruntime static quantization failed: on purpose")

    monkeypatch.setattr(
        resnet_deploy.targets.onnx, "quantize", broken
    )  # the ONNX export fails: OpenVINO goes on without it
    res = pipeline.export_model(
        pipeline.Loaded.of("digits", digits_model, digits_calib),
        ["onnx", "openvino"],
        INT8,
        Workspace(tmp_path / "failed"),
    )
    assert list(res.failures) == ["onnx"] and [a.target for a in res.artifacts] == ["openvino"]
    assert res.artifacts[0].details["quantization"]["why"] == f"NNCF: {NO_INT8_ONNX}"


def test_why_not_names_every_case_the_onnx_model_cannot_serve():
    assert from_onnx.why_not(INT8) is None
    assert from_onnx.why_not(ExportConfig(precision="fp32")) == "fp32 is not int8"
    assert (
        from_onnx.why_not(ExportConfig(precision="int8", options={"openvino_int8": "nncf"})) == "--openvino-int8 nncf"
    )
    assert "float" in from_onnx.why_not(ExportConfig(precision="int8", quant=QuantConfig(float_nodes=("conv",))))
    asked = ExportConfig(precision="int8", options={"onnx_format": "qdq-u8s8"})
    assert from_onnx.why_not(asked).startswith("--onnx-format qdq-u8s8 is the ONNX model's")
    arm = ExportConfig(precision="int8", device="arm64")  # S8S8 for sdot: saturates in OpenVINO on x86
    assert from_onnx.why_not(arm) == "the ONNX int8 model is made for arm64 (aarch64); OpenVINO's is for x86"
    assert from_onnx.why_not(ExportConfig(precision="int8", device="x86-vnni")) is None
    assert from_onnx.takes(INT8, ["onnx", "openvino"]) and not from_onnx.takes(INT8, ["tflite", "openvino"])
    with pytest.raises(Exception, match=r"--openvino-int8='pot'. Supported: auto, nncf"):
        ArtifactOptions(target_options={"openvino_int8": "pot"})


def test_the_plan_exports_openvino_after_the_onnx_model_it_takes():
    all3 = [get_target(n) for n in ("tflite", "onnx", "openvino")]
    order, worker = background.plan(all3, INT8)
    assert ([t.name for t in order], worker) == (["onnx", "tflite", "openvino"], False)  # nothing to run beside
    nncf = ExportConfig(precision="int8", options={"openvino_int8": "nncf"})
    order, worker = background.plan(all3, nncf)  # NNCF's pass runs beside ORT's
    assert ([t.name for t in order], worker) == (["onnx", "openvino", "tflite"], True)


def test_an_accuracy_budget_keeps_openvino_on_nncf():
    order = [get_target(n) for n in ("onnx", "tflite", "openvino")]
    for budget, wanted in ((False, True), (True, False)):
        exchange = pipeline._exchange(order, INT8, budget)  # noqa: SLF001
        assert (exchange.ranges.wanted, exchange.int8_onnx.wanted) == (True, wanted)
    alone = pipeline._exchange([get_target("openvino"), get_target("tflite")], INT8, False)  # noqa: SLF001
    assert not alone.ranges.wanted and not alone.int8_onnx.wanted  # no earlier target makes them
