"""`export` over several precisions in one run (the model loaded once), its table on stdout, and
the ONNX files' batch dimension named `batch`."""

from __future__ import annotations

import json

import numpy as np

from tests.support.cli import run_cli


def test_export_takes_a_list_of_precisions_and_prints_a_table(tmp_path, capsys):
    args = ["export", "--target", "tflite,onnx", "--precision", "fp32,int8", "--out", str(tmp_path)]
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    assert err.count("loading model digits ...") == 1, err  # once for every precision
    head, *rows = out.strip().splitlines()
    assert head.split() == ["target", "precision", "size", "export", "s", "sha256", "model", "file"]
    assert [r.split()[:2] for r in rows] == [["tflite", "fp32"], ["onnx", "fp32"], ["tflite", "int8"], ["onnx", "int8"]]
    assert all(" KiB " in r and str(tmp_path) in r for r in rows)
    code, _, err = run_cli(capsys, *args[:-2], "--max-acc-drop", "1", "--val", "digits", "--out", str(tmp_path / "b"))
    assert code == 2 and "--max-acc-drop applies to int8 exports (asked: fp32,int8)" in err


def test_onnx_batch_dimension_is_named_batch(tmp_path, capsys):
    import onnx
    import onnxruntime as ort

    code, out, err = run_cli(
        capsys, "export", "--target", "onnx", "--precision", "fp32,int8", "--out", str(tmp_path), "--json"
    )
    assert code == 0, err
    paths = [a["path"] for a in json.loads(out)["artifacts"]]
    assert len(paths) == 2
    for path in paths:
        g = onnx.load(path).graph
        for v in [*g.input, *g.output]:
            assert v.type.tensor_type.shape.dim[0].dim_param == "batch", (path, v.name)
        symbols = {d.dim_param for v in [*g.input, *g.output, *g.value_info] for d in v.type.tensor_type.shape.dim}
        assert not any(s.startswith("unk__") for s in symbols), symbols
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        y = sess.run(None, {sess.get_inputs()[0].name: np.zeros((3, 32, 32, 3), np.float32)})[0]
        assert y.shape == (3, 10) and sess.get_inputs()[0].shape[0] == "batch"
