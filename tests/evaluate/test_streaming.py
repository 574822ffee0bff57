"""Parity streams: metrics accumulated batch by batch (or shard by shard) are the metrics of the
whole; every runtime serves a batch at its throughput configuration with outputs in order; and
parity's memory does not grow with the number of samples."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from resnet_deploy.portable.metrics import Accumulator, compare


def _outputs(n: int, classes: int = 10, seed: int = 0):
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=(n, classes)).astype(np.float32)
    out = (ref + rng.normal(scale=0.3, size=ref.shape)).astype(np.float32)
    return ref, out, rng.integers(0, classes, n)


@pytest.mark.parametrize("shape", [(203, 10), (37, 4, 4, 8)])
def test_batches_and_shards_give_the_metrics_of_the_whole(shape):
    rng = np.random.default_rng(1)
    ref = rng.normal(size=shape).astype(np.float32)
    out = (ref + rng.normal(scale=0.2, size=shape)).astype(np.float32)
    labels = rng.integers(0, shape[1], shape[0]) if len(shape) == 2 else None
    whole = compare(ref, out, labels)
    acc = Accumulator()
    for s in range(0, shape[0], 16):
        acc.add(ref[s : s + 16], out[s : s + 16], None if labels is None else labels[s : s + 16])
    shards = [Accumulator(), Accumulator()]  # two machines, merged from their plain states
    for k, s in enumerate(range(0, shape[0], 50)):
        shards[k % 2].add(ref[s : s + 50], out[s : s + 50], None if labels is None else labels[s : s + 50])
    merged = Accumulator(shards[0].state()).merge(Accumulator(shards[1].state()))
    for m in (acc.result(), merged.result()):
        assert m.keys() == whole.keys()
        for k, v in whole.items():
            if v is None or k in ("top1_agreement", "accuracy", "ref_accuracy", "max_abs", "max_abs_rel"):
                assert m[k] == v, k  # counts and maxima: exactly
            else:
                assert m[k] == pytest.approx(v, rel=1e-12), k  # float64 sums: to rounding


def test_an_accumulator_that_saw_nothing_refuses_to_answer():
    with pytest.raises(ValueError, match="no samples"):
        Accumulator().result()


@pytest.fixture(scope="module")
def digits_int8(tmp_path_factory):
    from resnet_deploy.exporting.pipeline import ensure_artifacts, load
    from resnet_deploy.models.source import ModelRef
    from resnet_deploy.progress import Progress
    from resnet_deploy.requests import ArtifactOptions
    from resnet_deploy.store.workspace import Workspace

    out = tmp_path_factory.mktemp("serve")
    loaded = load(ModelRef(), ArtifactOptions(), Progress())
    targets = ("tflite", "onnx", "openvino")
    return dict(zip(targets, ensure_artifacts(Workspace(out), loaded, targets, "int8", Progress())))


@pytest.mark.parametrize("target", ["tflite", "onnx", "openvino"])
def test_serving_a_batch_gives_predicts_outputs_in_order(digits_int8, target):
    from resnet_deploy.backend.target import get_target
    from resnet_deploy.models.digits import dataset

    x = dataset("test")[0][:37]
    with get_target(target).runner(digits_int8[target], threads=2) as r:
        served, predicted = r.serve(x), r.predict(x)
        again = r.serve(x[::-1])  # the serving setup is reused; order follows the input
        info = r.info()
    assert served.shape == predicted.shape == (37, 10)
    np.testing.assert_allclose(served, predicted, atol=1e-5)
    np.testing.assert_allclose(again, served[::-1], atol=1e-5)
    if target == "openvino":
        assert info["inference_precision"] == "f32"  # the throughput compilation is checked too


def _parity_peak(tmp_path, data, n: int) -> int:
    from resnet_deploy.evaluate.parity_run import run_parity
    from resnet_deploy.requests import ParityRequest

    req = ParityRequest(data=str(data), n=n, targets=("tflite",), precisions=("int8",), out=tmp_path / "out")
    run_parity(req)  # exports once, so the measured run below is parity alone
    tracemalloc.start()
    report = run_parity(req)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert report.samples == n
    return peak


def test_parity_memory_does_not_grow_with_the_samples(tmp_path):
    """2000 digits-like images (32x32x3 uint8; 24 MB once preprocessed to float32) against 200."""
    from resnet_deploy.calibration.sources import load_digits_split
    from PIL import Image

    images, labels = load_digits_split("all")
    big = np.stack([np.asarray(Image.fromarray(im).resize((32, 32)).convert("RGB")) for im in images])
    big = np.concatenate([big, big[:203]])  # 2000
    np.savez(tmp_path / "d.npz", x=big, y=np.concatenate([labels, labels[:203]]))
    small, large = _parity_peak(tmp_path, tmp_path / "d.npz", 200), _parity_peak(tmp_path, tmp_path / "d.npz", 2000)
    assert large < 1.15 * small + (2 << 20), (small, large)
    assert large < 2000 * 32 * 32 * 3 * 4 / 2, large  # far below the samples' own float32 size
