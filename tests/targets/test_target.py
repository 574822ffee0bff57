"""The Target template and the docs' plugin example, run as written."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from resnet_deploy.config import ExportConfig
from resnet_deploy.backend.target import targets_with, available_targets, get_target, register, unregister
from resnet_deploy.store.workspace import Workspace

PLUGINS = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"


def test_the_readme_example_target_exports_and_runs(tmp_path):
    import keras

    from resnet_deploy.exporting import pipeline

    code = re.search(r"```python\n(# my_target\.py.*?)```", PLUGINS.read_text(), re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "docs/plugins.md example", "exec"), namespace)  # noqa: S102 - our own documentation
    assert len(code.strip().splitlines()) <= 55
    register("npy", namespace["NumpyTarget"])
    try:
        assert "npy" in available_targets()
        inp = keras.Input((4,))
        model = keras.Model(inp, keras.layers.Dense(3, use_bias=False)(inp))
        res = pipeline.export_model(
            pipeline.Loaded.of("tiny", model), ["npy"], ExportConfig(precision="fp32"), Workspace(tmp_path)
        )
        assert res.ok, res.failures
        x = np.random.default_rng(0).random((5, 4), dtype=np.float32)
        with get_target("npy").runner(res.artifacts[0]) as r:
            np.testing.assert_allclose(r.predict(x), model.predict(x, verbose=0), rtol=1e-5)
        assert res.artifacts[0].manifest["files"]["w.npy"]["bytes"] > 0
        dense = model.layers[-1].name  # the probe's tensor matched the Keras layer by value
        assert res.artifacts[0].manifest["layer_map"]["layers"] == {dense: "matmul#0"}
        assert {"npy"} <= set(targets_with("probe")) & set(targets_with("float_graph")) & set(targets_with("file_ops"))
        _the_plugins_own_option_is_checked_recorded_and_compared(model, tmp_path)
    finally:
        unregister("npy")
    assert "npy" not in available_targets()


def _the_plugins_own_option_is_checked_recorded_and_compared(model, tmp_path):
    import pytest

    from resnet_deploy.backend.target import declared_options
    from resnet_deploy.errors import InputError
    from resnet_deploy.exporting import pipeline
    from resnet_deploy.requests import ArtifactOptions
    from resnet_deploy.store.workspace import conflicts

    assert {"io_dtype", "onnx_format", "openvino_int8", "npy_dtype"} <= set(declared_options())
    with pytest.raises(InputError, match=r"--npy-dtype='float64'. Supported: float32, float16"):
        ArtifactOptions(target_options={"npy_dtype": "float64"})
    asked = ArtifactOptions(target_options={"npy_dtype": "float16"})
    ws = Workspace(tmp_path / "half")
    res = pipeline.export_model(pipeline.Loaded.of("tiny", model), ["npy"], asked.config("fp32"), ws)
    artifact = res.artifacts[0]
    assert np.load(artifact.model_file).dtype == np.float16
    assert artifact.manifest["config"]["options"]["npy_dtype"] == "float16"
    assert artifact.manifest["config"]["options"]["io_dtype"] == "int8"  # every declared option, defaults too
    reads = get_target("npy").reads()
    assert "options.npy_dtype" in reads and "options.io_dtype" not in reads
    assert conflicts(artifact, reads, asked.given_config(), None, None) == []
    other = ArtifactOptions(target_options={"npy_dtype": "float32", "io_dtype": "float"}).given_config()
    assert conflicts(artifact, reads, other, None, None) == ["options.npy_dtype=float16 (asked: float32)"]


def test_the_template_wraps_any_converter_exception_in_one_export_error(tmp_path, digits_model):
    """Even an exception with an empty message becomes one line that names the target and the type."""
    import pytest

    from resnet_deploy.config import Precision
    from resnet_deploy.errors import ExportError, InputError
    from resnet_deploy.backend.target import Target

    class Empty(Target):
        name, precisions = "empty", (Precision.FP32, Precision.INT8)

        def export_impl(self, model, out_dir, config, calib, progress):
            raise RuntimeError("")

    with pytest.raises(ExportError, match=r"^empty fp32 export failed: RuntimeError$"):
        Empty().export(digits_model, tmp_path, ExportConfig(precision="fp32"))
    with pytest.raises(InputError, match="int8 export needs calibration data"):
        Empty().export(digits_model, tmp_path, ExportConfig(precision="int8"))  # checked before export_impl
    with pytest.raises(InputError, match="does not support precision='fp16'"):
        Empty().export(digits_model, tmp_path, ExportConfig(precision="fp16"))
