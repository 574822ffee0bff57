"""The accuracy budget (`export --max-acc-drop PTS --val DATA`): on a model whose plain int8 breaks
and a repair mends (tests/support/outlier.py: repaired, no float layer), on one whose outlier no
repair can reach (tests/support/holdout.py with a Flatten before its head: float layers), and on
digits, which quantizes fine; its refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from resnet_deploy.store.artifact import Artifact
from tests.support.cli import run_cli


@pytest.fixture(scope="module")
def blocked_model(tmp_path_factory):
    from tests.support import holdout

    return holdout.save(tmp_path_factory.mktemp("blocked") / "blocked.keras", flatten=True)


def _export_within(model, out):
    from resnet_deploy import export
    from resnet_deploy.quantize.budget import Budget
    from resnet_deploy.models.source import ModelRef
    from resnet_deploy.requests import ArtifactOptions, ExportRequest

    result = export(
        ExportRequest(
            ModelRef(str(model)),
            "all",
            "int8",
            ArtifactOptions(calib="digits", calib_size=64),
            out,
            Budget(1.0, "digits"),
        )
    )
    assert not result.failures, result.failures
    return out


@pytest.fixture(scope="module")
def budgeted(blocked_model, tmp_path_factory):
    """The blocked hold-out model exported to all three targets within 1 point on digits' validation split."""
    return _export_within(blocked_model, tmp_path_factory.mktemp("budget"))


def _budget(out: Path, target: str, model: str = "blocked") -> dict:
    return Artifact.load(out / model / target / "int8").manifest["accuracy_budget"]


@pytest.mark.parametrize("target", ["tflite", "onnx", "openvino"])
def test_the_budget_keeps_the_outlier_layers_in_float_when_no_repair_reaches_them(budgeted, target):
    """Plain int8 loses > 10 points; every repair is tried first and none meets the budget (the
    outlier's channel group ends at a Flatten); the budgeted artifact keeps the outlier's layers
    (b_n2, b_scn, or what they are fused into) and a few after it in float, is within 1 point of
    Keras on the validation data, and records each attempt and what the fallback costs."""
    b = _budget(budgeted, target)
    assert b["keras_accuracy"] - b["plain_int8_accuracy"] > 10
    assert b["keras_accuracy"] - b["accuracy"] <= 1.0 and b["drop_pts"] <= 1.0
    repaired = [t for t in b["tried"] if not t["float_layers"]]
    assert [t["repairs"] for t in repaired] == [["cle"], ["bias-correction"], ["cle", "bias-correction"]]
    assert all(t["accuracy"] < b["keras_accuracy"] - 1 for t in repaired)
    assert {"b_n2", "b_scn", "b_add", "b_out"} & set(b["float_layers"][:2]), b["float_layers"]
    assert 1 <= len(b["float_layers"]) <= 8 and b["float_nodes"]
    floats = [t for t in b["tried"] if t["float_layers"]]
    assert [len(t["float_layers"]) for t in floats] == list(range(1, len(floats) + 1))
    assert floats[-1]["float_layers"] == b["float_layers"]
    assert all(t["accuracy"] < b["keras_accuracy"] - 1 for t in floats[:-1])  # fewest: every shorter list missed
    assert b["latency"]["p50_ms"]["plain_int8"] > 0 and b["latency"]["ratio"] > 0
    assert len(b["sample_fingerprints"]["validation"]) == 360


@pytest.mark.parametrize("model", ["outlier", "holdout"])
def test_a_repair_meets_the_budget_with_no_float_layer(model, tmp_path_factory, capsys):
    """The digits outlier fixture and the hold-out one (other names, other stem): cross-layer
    equalization alone brings every backend within 1 point, no layer in float; the manifest says
    so and what the repair changed, and the terminal line names it."""
    from tests.support import holdout, outlier

    folder = tmp_path_factory.mktemp(model)
    path = outlier.save(folder / "outlier.keras") if model == "outlier" else holdout.save(folder / "holdout.keras")
    out = folder / "out"
    code, stdout, err = run_cli(
        capsys,
        "export",
        "--model",
        str(path),
        "--target",
        "all",
        "--calib",
        "digits",
        "--calib-size",
        "64",
        "--max-acc-drop",
        "1",
        "--val",
        "digits",
        "--out",
        str(out),
    )
    assert code == 0, err
    assert stdout.count(", no layer in float") == 3 and stdout.count("repaired with cle") == 3, stdout
    for target in ("tflite", "onnx", "openvino"):
        manifest = Artifact.load(out / path.stem / target / "int8").manifest
        b = manifest["accuracy_budget"]
        assert b["keras_accuracy"] - b["plain_int8_accuracy"] > 10 and b["drop_pts"] <= 1.0, target
        assert "cle" in b["repairs"] and b["float_layers"] == [] and b["float_nodes"] == []
        assert all(not t["float_layers"] for t in b["tried"]) and b["tried"][-1]["repairs"] == b["repairs"]
        assert b["tried"][0]["repairs"] == ["cle"]  # the cheapest first
        assert "repaired with cle" in b["reason"] and b["latency"]["ratio"] > 0
        cle = manifest["repairs"]["applied"][0]
        assert cle["name"] == "cle" and max(g["range_spread_before"] for g in cle["groups"]) > 300


def _read_in_int8(target: str, model_file: Path, tensor: str) -> bool:
    """Whether the int8 artifact's readers of `tensor` take it in int8, read from the artifact's
    own graph: the tensor is int8 (TFLite), comes out of a DequantizeLinear (ONNX) or a
    FakeQuantize (OpenVINO), or a QUANTIZE, QuantizeLinear or FakeQuantize (through layout ops)
    reads it. Asserts the tensor exists there."""
    if target == "tflite":
        from resnet_deploy.targets.tflite import load_interpreter_class

        interp = load_interpreter_class()[0](model_path=str(model_file))
        details = {d["name"]: d for d in interp.get_tensor_details()}
        assert tensor in details, f"{tensor!r} is not in {model_file}"
        index = details[tensor]["index"]
        return details[tensor]["dtype"] != np.float32 or any(
            index in o["inputs"] and o["op_name"] == "QUANTIZE" for o in interp._get_ops_details()
        )
    if target == "onnx":
        import onnx

        nodes = onnx.load(str(model_file)).graph.node
        producer = [n.op_type for n in nodes if tensor in n.output]
        assert producer, f"{tensor!r} is not in {model_file}"
        return producer == ["DequantizeLinear"] or any(
            n.op_type == "QuantizeLinear" and n.input[0] == tensor for n in nodes
        )
    import openvino as ov

    from resnet_deploy.targets.openvino.graph import LAYOUT_OPS as OV_LAYOUT_OPS

    ops = {op.get_friendly_name(): op for op in ov.Core().read_model(str(model_file)).get_ordered_ops()}
    assert tensor in ops, f"{tensor!r} is not in {model_file}"
    todo, kinds = [ops[tensor]], [ops[tensor].get_type_name()]
    while todo:
        for port in todo.pop().outputs():
            for reader in (t.get_node() for t in port.get_target_inputs()):
                if reader.get_type_name() in OV_LAYOUT_OPS:
                    todo.append(reader)
                else:
                    kinds.append(reader.get_type_name())
    return "FakeQuantize" in kinds


@pytest.mark.parametrize("target", ["tflite", "onnx", "openvino"])
def test_what_reads_a_float_layer_runs_in_float_too(budgeted, target):
    """A layer kept in float hands its output to its readers in float: in the int8 artifact no op
    takes a float layer's tensor in int8 (which would bring back the broken range), while a layer
    not kept in float is read in int8 (the control)."""
    from resnet_deploy.quantize.fallback import float_nodes, tensor_of

    int8 = Artifact.load(budgeted / "blocked" / target / "int8")
    layer_map = int8.manifest["layer_map"]  # the int8 file's own names (OpenVINO numbers its ops anew)
    layers = int8.manifest["accuracy_budget"]["float_layers"]
    fp32 = Artifact.load(budgeted / "blocked" / target / "fp32")
    kept = set(int8.manifest["accuracy_budget"]["float_nodes"])
    untouched = [n for n in layer_map["layers"] if n not in layers and not set(float_nodes(target, fp32, [n])) & kept]
    assert layers
    for layer in (n for n in layers if n != "head"):  # the model output: TFLite requantizes it for its output tensor
        assert not _read_in_int8(target, int8.model_file, tensor_of(layer_map, layer)), layer
    # the control: where the fallback left layers alone, the same check does find int8 readers
    assert not untouched or any(_read_in_int8(target, int8.model_file, tensor_of(layer_map, n)) for n in untouched)


def test_budgeted_artifacts_pass_parity_on_held_out_data(budgeted, blocked_model, capsys):
    """Within 1 point on the held-out test split too (never seen by calibration or validation),
    where plain int8 loses > 10 (tests/quantize/test_diagnose.py)."""
    code, out, err = run_cli(
        capsys,
        "parity",
        "--model",
        str(blocked_model),
        "--targets",
        "all",
        "--data",
        "digits",
        "--n",
        "450",
        "--out",
        str(budgeted),
        "--json",
    )
    assert code == 0, err
    for r in json.loads(out)["results"]:
        assert r["metrics"]["acc_drop"] <= 1.0, r


def test_parity_refuses_the_validation_samples(budgeted, blocked_model, tmp_path, capsys):
    from resnet_deploy.calibration.sources import load_digits_split

    x, y = load_digits_split("val")
    np.savez(tmp_path / "val.npz", x=x[:50], y=y[:50])
    code, _, err = run_cli(
        capsys,
        "parity",
        "--model",
        str(blocked_model),
        "--targets",
        "onnx",
        "--data",
        str(tmp_path / "val.npz"),
        "--out",
        str(budgeted),
    )
    assert code == 2 and err.count("error:") == 1
    assert "50 of the parity samples are also validation samples" in err


def test_digits_quantizes_fine_so_it_gets_no_float_layers(tmp_path, capsys):
    code, out, err = run_cli(
        capsys, "export", "--target", "all", "--max-acc-drop", "1", "--val", "digits", "--out", str(tmp_path)
    )
    assert code == 0, err
    met = [ln for ln in out.splitlines() if ln.startswith("budget met: ")]
    assert [ln.split()[2] for ln in met] == ["tflite/int8", "onnx/int8", "openvino/int8"], out
    assert all("(budget 1.0)" in ln and ln.endswith("plain int8, no layer in float") for ln in met), out
    for target in ("tflite", "onnx", "openvino"):
        b = Artifact.load(tmp_path / "digits" / target / "int8").manifest["accuracy_budget"]
        assert b["float_layers"] == [] and b["tried"] == [] and b["drop_pts"] <= 1.0, target
        assert b["reason"] == "plain int8 meets the budget"


def test_an_unreachable_budget_exits_5_and_leaves_nothing(blocked_model, tmp_path, capsys):
    code, _, err = run_cli(
        capsys,
        "export",
        "--model",
        str(blocked_model),
        "--target",
        "onnx",
        "--calib",
        "digits",
        "--max-acc-drop",
        "1",
        "--val",
        "digits",
        "--max-float-layers",
        "1",
        "--out",
        str(tmp_path),
    )
    assert code == 5 and err.count("error:") == 1, err
    assert "misses the accuracy budget: best drop" in err and "with repairs (" in err and "1 layers in float (b_" in err
    model_dir = tmp_path / "blocked" / "onnx"
    assert not (model_dir / "int8").exists()
    assert [p.name for p in model_dir.iterdir()] == ["fp32"]  # no staging or attempt folders left


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--max-acc-drop", "-1", "--val", "digits"],
            "--max-acc-drop -1.0 must be a number of accuracy points in [0, 100)",
        ),
        (["--max-acc-drop", "nan", "--val", "digits"], "--max-acc-drop nan must be"),
        (["--max-acc-drop", "100", "--val", "digits"], "--max-acc-drop 100.0 must be"),
        (["--max-acc-drop", "1"], "--max-acc-drop needs labelled validation data: pass --val"),
        (["--val", "digits"], "--val and --max-float-layers go with --max-acc-drop"),
        (["--max-acc-drop", "1", "--val", "digits", "--max-float-layers", "0"], "--max-float-layers 0 must be"),
        (["--max-acc-drop", "1", "--val", "digits", "--precision", "fp32"], "--max-acc-drop applies to int8 exports"),
        (["--max-acc-drop", "1", "--val", "synthetic"], "has no labels; --max-acc-drop needs labelled validation data"),
        (
            ["--max-acc-drop", "1", "--val", "SHARED", "--calib", "SHARED"],  # one labelled file for both
            "of the validation samples are also calibration samples",
        ),
        (["--max-acc-drop", "1", "--val", "/no/such/folder"], "/no/such/folder"),
    ],
)
def test_budget_bad_input_is_one_line_and_exit_2(args, message, tmp_path, capsys):
    if "SHARED" in args:
        from resnet_deploy.calibration.sources import load_digits_split

        x, y = load_digits_split("test")
        np.savez(tmp_path / "shared.npz", x=x, y=y)
        args = [str(tmp_path / "shared.npz") if a == "SHARED" else a for a in args]
    code, _, err = run_cli(capsys, "export", "--target", "onnx", *args, "--out", str(tmp_path))
    assert code == 2, err
    assert err.count("error:") == 1 and message in err and "Traceback" not in err
    assert not (tmp_path / "digits" / "onnx" / "int8").exists()


def test_bench_shows_what_the_fallback_costs(budgeted, blocked_model, capsys):
    code, out, err = run_cli(
        capsys,
        "bench",
        "--model",
        str(blocked_model),
        "--targets",
        "onnx",
        "--precision",
        "int8",
        "--no-keras",
        "--warmup-s",
        "0.05",
        "--seconds",
        "0.1",
        "--out",
        str(budgeted),
    )
    assert code == 0, err
    layers = _budget(budgeted, "onnx")["float_layers"]
    assert f"keeps {len(layers)} layers in float ({', '.join(layers)}) for its accuracy budget: p50 x" in out
