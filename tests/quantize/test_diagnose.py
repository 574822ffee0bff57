"""Layer map and diagnose on the real backends: every Keras layer that computes is mapped or
listed as folded on every backend, with the same names; the per-layer numbers are consistent."""

from __future__ import annotations

import json

import numpy as np
import pytest

from resnet_deploy.progress import Progress

from resnet_deploy.exporting import layermap
from tests.support.cli import run_cli

FILES = {"tflite": "model.tflite", "onnx": "model.onnx", "openvino": "model.xml"}


@pytest.fixture(scope="module")
def diagnosed(tmp_path_factory):
    from resnet_deploy.quantize.diagnose_run import run_diagnose
    from resnet_deploy.requests import DiagnoseRequest

    out = tmp_path_factory.mktemp("diag")
    return out, run_diagnose(DiagnoseRequest(n=6, out=out), RECORDED)


class Recording(Progress):
    """What the library reported: every loop it tracked (label, total)."""

    def __init__(self) -> None:
        self.tracked: list[tuple[str, int]] = []

    def track(self, items, total, label, weight=None):
        self.tracked.append((label, total))
        return items


RECORDED = Recording()


def test_every_long_loop_reports_its_count(diagnosed):
    """Calibration (TFLite, ONNX; OpenVINO int8 is made from ONNX's) and each backend's layer-by-
    layer pass report their totals, so a terminal shows count, rate and time left."""
    labels = dict(RECORDED.tracked)
    assert labels.get("calibrating TFLite") == 200, RECORDED.tracked
    assert any(k.startswith("calibrating") and "ONNX" in k.upper() for k in labels), RECORDED.tracked
    for t in ("tflite", "onnx", "openvino"):
        (total,) = [n for k, n in RECORDED.tracked if k.startswith(f"diagnosing {t}/int8, ") and k.endswith(" layers")]
        assert total == 6


def test_every_computing_layer_is_mapped_or_folded_on_every_backend(diagnosed):
    out, res = diagnosed
    assert set(res.backends) == {"tflite/int8", "onnx/int8", "openvino/int8"}
    order = res.layers
    assert order[0] == "stem_conv" and order[-1] == "logits" and "input" not in order
    for b, r in res.backends.items():
        mapped = [lay["layer"] for lay in r["layers"]]
        assert set(mapped) | set(r["folded"]) == set(order), b
        assert not set(mapped) & set(r["folded"]), b
        assert mapped == [n for n in order if n in mapped], b  # graph order
        for layer, carrier in r["folded"].items():
            assert carrier in mapped and order.index(carrier) > order.index(layer), (b, layer, carrier)
        assert "logits" in mapped and "avg_pool" in mapped  # the head is never folded away
    # a Conv2D never has its own tensor (its BN is folded into it); the ReLU after a block's Add always has
    for r in res.backends.values():
        assert {"stem_conv", "block1_conv1", "block2_conv2"} <= set(r["folded"])
        assert {"block1_out", "block2_out"} <= {lay["layer"] for lay in r["layers"]}


def test_per_layer_numbers_are_consistent(diagnosed):
    out, res = diagnosed
    for b, r in res.backends.items():
        for lay in r["layers"]:
            assert 0.9 <= lay["cosine"] <= 1.0 and lay["sqnr_db"] > 5 and lay["added_noise_pct"] >= 0, (b, lay)
            # SQNR and cosine agree: 10*log10(1/(2(1-cos))) is SQNR's upper bound for unbiased noise
            assert lay["sqnr_db"] <= 10 * np.log10(1 / max(2 * (1 - lay["cosine"]), 1e-12)) + 3, (b, lay)
        below = [lay["layer"] for lay in r["layers"] if lay["sqnr_db"] < res.sqnr_limit_db]
        assert r["first_divergent"] == (below[0] if below else None)
        assert sorted(r["ranked"]) == sorted(lay["layer"] for lay in r["layers"])
        added = {lay["layer"]: lay["added_noise_pct"] for lay in r["layers"]}
        assert [added[n] for n in r["ranked"]] == sorted(added.values(), reverse=True)
    saved = json.loads((out / "digits" / "diagnose.json").read_text())
    assert saved["backends"].keys() == res.backends.keys()


def test_fp32_maps_are_exact(diagnosed, digits_model, digits_test):
    out, _ = diagnosed
    x = digits_test[0][:1]
    keras_out = layermap.keras_activations(digits_model, x)
    order = [layer.name for layer in layermap.computing_layers(digits_model)]
    for t, f in FILES.items():
        lm = layermap.build(t, keras_out, layermap.probe_tensors(t, out / "digits" / t / "fp32" / f, x), order)
        assert all(rec["score"] >= 1 - 1e-3 for rec in lm.layers.values()), t
        np.testing.assert_allclose(
            layermap.probe_tensors(t, out / "digits" / t / "fp32" / f, x)[lm.layers["logits"]["tensor"]].ravel(),
            keras_out["logits"].ravel(),
            rtol=1e-4,
            atol=1e-4,
        )


def test_the_terminal_shows_the_verdict_and_top_layers_and_the_report_every_layer(diagnosed, capsys):
    out, _ = diagnosed
    code, stdout, err = run_cli(capsys, "diagnose", "--n", "4", "--sqnr-limit", "1000", "--out", str(out))
    assert code == 0, err
    assert "- tflite/int8: first below the limit: stem_relu" in stdout  # everything is below 1000 dB
    assert len(stdout) < 3500 and "folded:" not in stdout and "| layer | class |" not in stdout  # not a wall of text
    why = stdout.split("Why (Keras")[1]
    assert why.count("\n| ") == 1 + 5 and "more in --json and the report" in why  # header and 5 layers
    for backend in ("tflite/int8", "onnx/int8", "openvino/int8"):
        block = stdout.split(f"- {backend}:")[1].split("\n- ")[0]
        assert block.count(" dB, adds ") == 5, block  # its five noisiest layers, each with numbers
    code, stdout, err = run_cli(capsys, "report", "--out", str(out), "--json")
    (made,) = json.loads(stdout)["reports"]
    md = open(made["markdown"]).read()
    assert "| layer | class | tflite/int8 SQNR dB | tflite/int8 added noise % | onnx/int8 SQNR dB" in md
    assert "| block1_conv1 |" not in md and "| block2_out | ReLU |" in md
    code, _, err = run_cli(capsys, "diagnose", "--n", "0", "--out", str(out))
    assert code == 2 and "--n 0 must be a whole number >= 1" in err


@pytest.fixture(scope="module")
def outlier_model(tmp_path_factory):
    from tests.support import outlier

    return outlier.save(tmp_path_factory.mktemp("outlier") / "outlier.keras")


def test_an_outlier_channel_breaks_int8_everywhere_and_diagnose_names_its_layer(outlier_model, tmp_path, capsys):
    """The fixture loses far more than 10 points in plain int8 on every backend (parity exits 5),
    and diagnose names the layer whose channel is the outlier, down_bn (fused with down_relu),
    on all three backends; on digits itself nothing is lost."""
    common = ["--model", str(outlier_model), "--data", "digits", "--calib", "digits", "--out", str(tmp_path)]
    code, out, err = run_cli(capsys, "parity", *common, "--targets", "all", "--n", "200", "--json")
    assert code == 5, err
    for r in json.loads(out)["results"]:
        assert r["metrics"]["acc_drop"] > 10, r["name"]
    code, out, err = run_cli(capsys, "diagnose", *common, "--n", "6", "--json")
    assert code == 0, err
    res = json.loads(out)
    for b, r in res["backends"].items():
        assert r["first_divergent"] in ("down_bn", "down_relu"), (b, r["first_divergent"])
        measured = {lay["layer"]: lay for lay in r["layers"]}
        assert {"avg_pool", "logits"} <= set(measured) and not r["absent"], b  # damaged, measured, not lost
        assert measured["avg_pool"]["sqnr_db"] < 20 and measured[r["first_divergent"]]["sqnr_db"] < 20, b
        assert set(r["folded"]) | set(measured) == set(res["layers"]), b  # every layer is one or the other
    code, stdout, _ = run_cli(capsys, "diagnose", *common, "--n", "6")
    assert "absent" not in stdout


def test_digits_quantizes_fine_so_nothing_is_absent(diagnosed):
    _, res = diagnosed
    assert all(not r["absent"] for r in res.backends.values())


def test_the_report_draws_sqnr_per_layer_with_one_line_per_backend(diagnosed, capsys):
    out, _ = diagnosed
    code, stdout, err = run_cli(capsys, "report", "--out", str(out), "--json")
    assert code == 0, err
    (paths,) = json.loads(stdout)["reports"]
    assert paths["model"] == "digits" and paths["images"] == ["sqnr_per_layer.png"]
    md = open(paths["markdown"]).read()
    assert "### Diagnose: digits int8 vs Keras fp32" in md and "| block2_out | ReLU |" in md


@pytest.mark.parametrize("which", ["seed", "resnet18", "user"])
def test_every_artifact_records_its_layer_map(which, outlier_model, tmp_path, capsys):
    """fp32 exports of the seed, a ResNet-18 and a user's model file: the manifest of each
    artifact maps every Keras layer that computes to a tensor, or names the layer it is folded into."""
    import keras

    from resnet_deploy.models.source import ModelRef

    model = {
        "seed": ["--model", "seed"],
        "user": ["--model", str(outlier_model)],
        "resnet18": ["--model", "resnet18", "--input-size", "64", "--classes", "10", "--width", "8"],
    }[which]
    code, _, err = run_cli(capsys, "export", *model, "--precision", "fp32", "--target", "all", "--out", str(tmp_path))
    assert code == 0, err
    name, m = ModelRef(
        *model[1:2], **({"input_size": 64, "classes": 10, "width": 8} if which == "resnet18" else {})
    ).load()
    computing = {layer.name for layer in layermap.computing_layers(m)}
    for t in FILES:
        lm = json.loads((tmp_path / name / t / "fp32" / "manifest.json").read_text())["layer_map"]
        assert "error" not in lm, (t, lm)
        assert set(lm["layers"]) | set(lm["folded"]) == computing, t
        assert all(carrier in lm["layers"] for carrier in lm["folded"].values()), t
        assert m.layers[-1].name in lm["layers"], t  # the output layer always has its tensor
    keras.backend.clear_session()


def test_keras_activations_warn_nothing_and_end_in_the_models_output(digits_model, digits_test):
    """Every export maps layers with this probe: a Keras warning on each call reached the user's terminal."""
    import warnings

    x = digits_test[0][:2]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        acts = layermap.keras_activations(digits_model, x)
    assert [str(w.message) for w in caught] == []
    np.testing.assert_allclose(acts["logits"], np.asarray(digits_model(x, training=False)), rtol=1e-5, atol=1e-5)
