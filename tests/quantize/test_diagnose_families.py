"""The int8 layer map on models none of our code was written against: the hold-out ResNet
(other names, a biased 5x5 stem with max-pool, an outlier channel in its residual stream) and an
auto-named pre-activation bottleneck network. Every layer is measured, folded into a named layer
or absent with a reason, on every backend; the damaged layer is the one named, never a healthy
earlier one."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.support.cli import run_cli


def _preact_bottleneck(path, odd: bool = False, names: str = "{kind}..-_{n}"):
    """Two pre-activation bottleneck blocks, every layer auto-named (conv2d_3, batch_normalization_5...)
    or, odd, named with every character TensorFlow allows beyond letters and digits (.. - _)."""
    import itertools

    import keras
    from keras import layers as L

    count = itertools.count()

    def n(kind: str) -> dict:
        return {"name": names.format(kind=kind, n=next(count))} if odd else {}

    keras.utils.set_random_seed(3)
    x = inp = keras.Input((32, 32, 3))
    x = L.Conv2D(16, 3, padding="same", **n("stem"))(x)
    for _ in range(2):
        y = L.ReLU(**n("r"))(L.BatchNormalization(**n("bn"))(x))
        y = L.ReLU(**n("r"))(L.BatchNormalization(**n("bn"))(L.Conv2D(8, 1, **n("c"))(y)))
        y = L.ReLU(**n("r"))(L.BatchNormalization(**n("bn"))(L.Conv2D(8, 3, padding="same", **n("c"))(y)))
        x = L.Add(**n("add"))([x, L.Conv2D(16, 1, **n("c"))(y)])
    x = L.GlobalAveragePooling2D(**n("pool"))(L.ReLU(**n("r"))(L.BatchNormalization(**n("bn"))(x)))
    model = keras.Model(inp, L.Dense(10, **n("head"))(x))
    rng = np.random.default_rng(0)
    for layer in model.layers:  # statistics as a trained network has them, not the identity
        if type(layer).__name__ == "BatchNormalization":
            g, b, _, _ = layer.get_weights()
            n = g.shape[0]
            layer.set_weights([g, b, rng.normal(0, 0.5, n).astype("f4"), rng.uniform(0.5, 2, n).astype("f4")])
    model.save(path)
    return path


def _accounted(res: dict, backend: str) -> tuple[set, set, dict]:
    r = res["backends"][backend]
    measured = {lay["layer"] for lay in r["layers"]}
    assert not measured & set(r["folded"]), backend  # one or the other, never both
    assert measured | set(r["folded"]) | set(r["absent"]) == set(res["layers"]), backend
    return measured, set(r["folded"]), r["absent"]


def test_holdout_outlier_names_the_damaged_layer_on_every_backend(tmp_path, capsys):
    from tests.support import holdout

    path = holdout.save(tmp_path / "holdout.keras")
    common = ["--model", str(path), "--data", "digits", "--calib", "digits", "--calib-size", "64"]
    code, out, err = run_cli(capsys, "diagnose", *common, "--n", "6", "--out", str(tmp_path / "o"), "--json")
    assert code == 0, err
    res = json.loads(out)
    for backend, r in res["backends"].items():
        measured, folded, absent = _accounted(res, backend)
        assert r["first_divergent"] in ("b_n2", "b_scn"), (backend, r["first_divergent"])
        assert not absent and {"b_n2", "b_scn", "head"} <= measured, backend
        healthy = [lay for lay in r["layers"] if lay["layer"] in ("entry_act", "a_r1", "a_out")]
        assert healthy and all(lay["sqnr_db"] > 20 for lay in healthy), backend  # before the outlier: fine
        assert r["folded"].get("b_sc") == "b_scn", backend  # the shortcut conv goes to its own BN
    assert "cle" in res["root_cause"]["b_n2"]["fix"] and res["root_cause"]["b_n2"]["channel_spread"] > 100


@pytest.mark.parametrize("odd", [False, True], ids=["auto-named", "odd-names"])
def test_a_preactivation_bottleneck_is_mapped_on_every_backend(odd, tmp_path, capsys):
    path = _preact_bottleneck(tmp_path / "preact.keras", odd)
    common = ["--model", str(path), "--data", "synthetic", "--calib", "synthetic", "--calib-size", "32"]
    code, out, err = run_cli(capsys, "diagnose", *common, "--n", "4", "--out", str(tmp_path / "o"), "--json")
    assert code == 0, err
    res = json.loads(out)
    assert any(name.startswith("bn..-_" if odd else "batch_normalization") for name in res["layers"])
    for backend in ("tflite/int8", "onnx/int8", "openvino/int8"):
        measured, _, absent = _accounted(res, backend)
        assert not absent, (backend, absent)
        assert len(measured) >= 8, backend  # the adds, the activations and the head at least
        assert res["layers"][-1] in measured, backend  # the output, whatever it is called


@pytest.mark.parametrize("repair", ["cle", "cle,bias-correction"])
def test_a_repaired_artifact_is_compared_with_the_repaired_model(repair, tmp_path, capsys):
    """diagnose remakes the repairs (same model, same calibration set, same fingerprint) so that a
    repaired artifact's rescaled channels are compared with the rescaled Keras layers."""
    from tests.support import holdout

    path = holdout.save(tmp_path / "holdout.keras")
    common = [
        "--model",
        str(path),
        "--data",
        "digits",
        "--calib",
        "digits",
        "--calib-size",
        "64",
        "--out",
        str(tmp_path),
    ]
    code, out, err = run_cli(capsys, "diagnose", *common, "--repair", repair, "--n", "6", "--json")
    assert code == 0, err
    for backend, r in json.loads(out)["backends"].items():
        assert r["first_divergent"] is None, (backend, r["first_divergent"])  # no layer below 20 dB any more
    code, _, err = run_cli(
        capsys, "diagnose", *common[:-2], "--calib-size", "32", "--out", str(tmp_path), "--repair", repair, "--n", "6"
    )
    assert code == 2 and "was exported with" in err  # another calibration set: not reused behind your back


@pytest.mark.parametrize("names", ["{kind}{{{{x}}}}{n}", "{kind}$(id){n}", "{kind};{n}", "{kind}#{n}", "{kind} {n}"])
def test_a_layer_name_tensorflow_cannot_trace_is_refused_in_one_line(names, tmp_path, capsys):
    """Template, shell and separator characters in a layer name: one line naming the layer and the
    fix, exit 2, before any export (TensorFlow's trace would fail with "in user code:")."""
    path = _preact_bottleneck(tmp_path / "odd.keras", True, names)
    code, _, err = run_cli(
        capsys, "export", "--model", str(path), "--calib", "synthetic", "--target", "all", "--out", str(tmp_path / "o")
    )
    assert code == 2 and err.count("error:") == 1 and "Traceback" not in err, err
    assert f"has a layer named '{names.format(kind='stem', n=0)}', which TensorFlow cannot trace" in err
    assert not (tmp_path / "o" / "odd").exists()
