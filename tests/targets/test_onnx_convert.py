"""tf2onnx in lean mode: the same file as tf2onnx's own mode, a fallback when an optimizer raises,
and no copy of the weights per optimizer call (the cause of 7.3 GB on ResNet-50)."""

from __future__ import annotations

import pytest

from resnet_deploy.models import source as models
from resnet_deploy.targets.onnx import convert as onnx_convert


@pytest.fixture(scope="module")
def model():
    return models.resnet18(input_shape=(32, 32, 3), classes=10, width=8)


def _convert_as_shipped(model, path, monkeypatch):
    """tf2onnx with its own optimizer loop (a deep copy per optimizer): the escape hatch."""
    with monkeypatch.context() as m:
        m.setenv(onnx_convert.LEAN_ENV, "0")
        how = onnx_convert.keras_to_onnx(model, path, 17)
    assert how["optimizers"].startswith("tf2onnx rollback mode"), how


def test_lean_mode_writes_the_same_file_as_tf2onnx_own_mode(model, tmp_path, monkeypatch):
    """...without building the frozen ConcreteFunction that tf2onnx's freezing makes (~3.5 s on
    ResNet-50 @224) only to export its GraphDef again."""
    from tensorflow.python.eager import wrap_function

    built, build = [], wrap_function.function_from_graph_def
    monkeypatch.setattr(wrap_function, "function_from_graph_def", lambda *a, **k: built.append(1) or build(*a, **k))
    how = onnx_convert.keras_to_onnx(model, tmp_path / "lean.onnx", 17)
    assert not built
    _convert_as_shipped(model, tmp_path / "shipped.onnx", monkeypatch)
    assert built  # tf2onnx's own builds it
    assert how["optimizers"].startswith("lean"), how
    assert (tmp_path / "lean.onnx").read_bytes() == (tmp_path / "shipped.onnx").read_bytes()


def test_an_optimizer_that_raises_in_lean_mode_falls_back_to_tf2onnx_rollback(model, tmp_path, monkeypatch):
    from tf2onnx.optimizer.identity_optimizer import IdentityOptimizer

    real, calls = IdentityOptimizer._optimize, []

    def broken(self, graph):
        calls.append(1)
        raise RuntimeError("optimizer bug")

    monkeypatch.setattr(IdentityOptimizer, "_optimize", broken)
    how = onnx_convert.keras_to_onnx(model, tmp_path / "m.onnx", 17)
    assert how["optimizers"] == "tf2onnx rollback mode" and "optimizer bug" in how["why"], how
    assert len(calls) >= 2  # raised in lean mode, then skipped by tf2onnx's rollback
    monkeypatch.setattr(IdentityOptimizer, "_optimize", real)
    import onnx

    onnx.checker.check_model(str(tmp_path / "m.onnx"))


def test_unchanged_consts_are_not_copied_again_per_optimizer(model, tmp_path, monkeypatch):
    """Each Const NodeProto rewrite copies its tensor (and protobuf keeps the old copy until the
    conversion ends): lean mode rewrites a Const only when it changed, tf2onnx's own loop after
    every optimizer call (12 optimizers, 2+ passes)."""
    from tf2onnx import graph

    rewrites = []
    real = graph.Node.update_proto

    def counting(self, external_tensor_storage=None):
        if self.type == "Const":
            rewrites.append(self.name)
        return real(self, external_tensor_storage)

    monkeypatch.setattr(graph.Node, "update_proto", counting)
    onnx_convert.keras_to_onnx(model, tmp_path / "lean.onnx", 17)
    lean = len(rewrites)
    rewrites.clear()
    _convert_as_shipped(model, tmp_path / "shipped.onnx", monkeypatch)
    assert lean > 0 and len(rewrites) >= 10 * lean, (lean, len(rewrites))


def test_the_lean_loader_does_not_import_the_graph_into_a_session_first(model, tmp_path, monkeypatch):
    """tf2onnx's tf_loader.from_function imports the frozen GraphDef into a session before grappler
    (a copy of every weight, alive at the peak); the conversion itself imports it once more."""
    import tensorflow as tf

    real, imports = tf.import_graph_def, []

    def counting(*args, **kwargs):
        imports.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(tf, "import_graph_def", counting)
    onnx_convert.keras_to_onnx(model, tmp_path / "lean.onnx", 17)
    lean = len(imports)
    imports.clear()
    _convert_as_shipped(model, tmp_path / "shipped.onnx", monkeypatch)
    assert (lean, len(imports)) == (1, 2)


def test_one_trace_per_model_shared_by_the_converters_and_gone_with_the_model():
    import gc

    from resnet_deploy import _tf

    m = models.resnet18(input_shape=(32, 32, 3), classes=10, width=8)
    fn, spec = _tf.inference_function(m)
    fn.get_concrete_function(*spec)
    assert _tf.inference_function(m)[0] is fn  # the TFLite converter gets tf2onnx's trace
    import weakref

    model_ref = weakref.ref(m)
    assert m in _tf._TRACED
    del m, fn
    gc.collect()
    assert model_ref() is None  # the function holds the model weakly: the cache does not keep it alive
