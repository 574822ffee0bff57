"""`matrix`: models x targets x precisions in one process, one table whose numbers are the ones
the separate commands measure."""

from __future__ import annotations

import json

import pytest

from tests.support.cli import run_cli

QUICK = ["--seconds", "0.3", "--warmup-s", "0.1"]


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    out = tmp_path_factory.mktemp("matrix")
    args = ["matrix", "--models", "digits,resnet18", "--input-size", "32", "--width", "8", "--classes", "10"]
    args += ["--targets", "tflite,onnx", "--precision", "fp32,int8", *QUICK, "--out", str(out)]
    return out, args


def test_one_table_for_every_cell_with_each_model_loaded_once(matrix, capsys):
    out, args = matrix
    code, stdout, err = run_cli(capsys, *args)
    assert code == 0, err
    assert err.count("loading model digits ...") == 1 and err.count("loading model resnet18 ...") == 1, err
    assert "PASS: all 8 cells." in stdout
    rows = [ln for ln in stdout.splitlines() if ln.startswith("| digits ") or ln.startswith("| resnet18 ")]
    assert len(rows) == 8 and all("| pass |" in r for r in rows), stdout
    assert "resnet18: 200 samples" in stdout and "UNTRAINED: speed only, agreement not judged" in stdout
    code, stdout, err = run_cli(capsys, *args, "--json")  # the second run reuses every artifact
    assert code == 0 and "exporting" not in err, err
    result = json.loads(stdout)
    assert json.loads((out / "matrix.json").read_text())["rows"] == result["rows"]
    cells = {(r["model"], r["target"], r["precision"]): r for r in result["rows"]}
    assert len(cells) == 8 and result["models"]["digits"]["samples"] == 450
    code, stdout, err = run_cli(capsys, "report", "--out", str(out), "--json")  # every model, with the table
    assert code == 0, err
    made = {r["model"]: r for r in json.loads(stdout)["reports"]}
    assert sorted(made) == ["digits", "resnet18"]
    md = open(made["digits"]["markdown"]).read()
    assert "### Matrix: models x targets x precisions" in md and "| resnet18 | onnx/int8 | pass |" in md
    assert "| onnx/int8 | pass |" in md.split("### Matrix")[0]  # the model's own summary, from the same run


def test_the_matrix_numbers_are_the_separate_commands_numbers(matrix, capsys):
    out, args = matrix
    code, stdout, err = run_cli(capsys, *args, "--json")
    assert code == 0, err
    cells = {(r["target"], r["precision"]): r for r in json.loads(stdout)["rows"] if r["model"] == "digits"}
    common = ["--targets", "tflite,onnx", "--precision", "fp32,int8", "--out", str(out), "--json"]
    code, stdout, err = run_cli(capsys, "parity", *common)
    assert code == 0, err
    for r in json.loads(stdout)["results"]:
        cell = cells[tuple(r["name"].split("/"))]
        assert cell["accuracy"] == r["metrics"]["accuracy"] and cell["top1_agreement"] == r["metrics"]["top1_agreement"]
        assert cell["keras_accuracy"] == r["metrics"]["ref_accuracy"]
    code, stdout, err = run_cli(capsys, "bench", *common, "--threads", "2", *QUICK)
    assert code == 0, err
    for r in json.loads(stdout)["rows"]:
        if r["backend"] == "keras":
            continue
        cell = cells[(r["backend"], r["precision"])]
        assert cell["size_mb"] == r["size_mb"]
        assert 1 / 3 < cell["p50_ms"] / r["p50"] < 3, (cell, r["p50"])  # the same protocol, measured twice


def test_a_model_option_only_reaches_the_models_that_take_it_and_bad_input_is_one_line(tmp_path, capsys):
    code, _, err = run_cli(capsys, "matrix", "--models", "digits,nope", "--out", str(tmp_path))
    assert code == 2 and err.count("error:") == 1 and "nope" in err and not (tmp_path / "matrix.json").exists()
    code, _, err = run_cli(capsys, "matrix", "--models", ",", "--out", str(tmp_path))
    assert code == 2 and "No model given" in err
