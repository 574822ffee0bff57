"""TFLite's conversion lets its frozen function go once the GraphDef is made (targets/tflite_lean.py)."""
from __future__ import annotations

import gc
import weakref

from resnet_deploy.config import ExportConfig
from resnet_deploy.target import get_target
from targets import tflite_lean


def test_the_frozen_function_is_gone_before_the_mlir_conversion_and_the_file_is_the_same(
        digits_model, digits_calib, tmp_path, monkeypatch):
    from tensorflow.lite.python import lite

    frozen, alive = [], []
    freeze, convert = lite.TFLiteFrozenGraphConverterV2._freeze_concrete_function, lite._convert_graphdef

    def watched_freeze(self):
        out = freeze(self)
        frozen.append(weakref.ref(out[3]))
        return out

    def watched_convert(*args, **kwargs):
        gc.collect()
        alive.append(frozen[-1]() is not None)
        return convert(*args, **kwargs)

    monkeypatch.setattr(lite.TFLiteFrozenGraphConverterV2, "_freeze_concrete_function", watched_freeze)
    monkeypatch.setattr(lite, "_convert_graphdef", watched_convert)
    files = {}
    for lean in ("1", "0"):  # ours, then TF's own
        monkeypatch.setenv(tflite_lean.ENV, lean)
        a = get_target("tflite").export(digits_model, tmp_path / lean, ExportConfig(precision="int8"), digits_calib)
        files[lean] = a.model_file.read_bytes()
    assert alive == [False, True]  # TF's own keeps it through the conversion
    assert files["1"] == files["0"]
