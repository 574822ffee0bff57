"""TFLite's conversion without the frozen ConcreteFunction TF builds and never uses
(targets/tflite/lean.py): none is built, and the file is the same as TF's own."""

from __future__ import annotations

from resnet_deploy.config import ExportConfig
from resnet_deploy.backend.target import get_target
import resnet_deploy.targets.tflite.lean as tflite_lean


def test_no_frozen_function_is_built_and_the_file_is_the_same(digits_model, digits_calib, tmp_path, monkeypatch):
    from tensorflow.python.eager import wrap_function

    built = {"1": 0, "0": 0}
    build = wrap_function.function_from_graph_def
    lean = "1"

    def counted(*args, **kwargs):
        built[lean] += 1
        return build(*args, **kwargs)

    monkeypatch.setattr(wrap_function, "function_from_graph_def", counted)
    files = {}
    for lean in ("1", "0"):  # ours, then TF's own
        monkeypatch.setenv(tflite_lean.ENV, lean)
        a = get_target("tflite").export(digits_model, tmp_path / lean, ExportConfig(precision="int8"), digits_calib)
        files[lean] = a.model_file.read_bytes()
    assert built == {"1": 0, "0": 1}  # TF's own builds it (and keeps it through the conversion)
    assert files["1"] == files["0"]
