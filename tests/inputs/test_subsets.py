"""Fewer samples than the data holds: a seeded, stratified sample recorded with its per-class
counts, never the first N of a class-sorted folder; large files are read a sample at a time."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from resnet_deploy.calibration.arrays import ArraySource
from resnet_deploy.calibration.dataset import CalibrationSet, from_spec
from resnet_deploy.calibration.preprocess import PreprocessSpec
from resnet_deploy.calibration.subset import choose

SHAPE = (None, 16, 16, 3)


@pytest.fixture(scope="module")
def sorted_folder(tmp_path_factory):
    """300 digit images in 10 class folders named like a user's ("cat_0" ... "cat_9"), 30 each."""
    from PIL import Image

    from resnet_deploy.calibration.sources import load_digits_split

    root = tmp_path_factory.mktemp("classes")
    images, labels = load_digits_split("all")
    for c in range(10):
        (root / f"cat_{c}").mkdir()
        for k, i in enumerate(np.flatnonzero(labels == c)[:30]):
            Image.fromarray(images[i]).save(root / f"cat_{c}" / f"img{k:04d}.png")
    return root


def test_a_class_sorted_folder_gives_every_class_its_share(sorted_folder):
    ds = from_spec(sorted_folder, SHAPE, size=200, seed=3)
    rec = ds.describe()["sampling"]
    assert rec["strategy"] == "stratified" and rec["seed"] == 3 and rec["available"] == 300
    assert sorted(rec["per_class"].values()) == [20] * 10 and rec["missing_classes"] == []
    _, y = ds.arrays()
    assert np.bincount(y).tolist() == [20] * 10  # what was read is what was recorded
    again, other = from_spec(sorted_folder, SHAPE, size=200, seed=3), from_spec(sorted_folder, SHAPE, size=200, seed=4)
    assert np.array_equal(again.selection.indices, ds.selection.indices)
    assert not np.array_equal(other.selection.indices, ds.selection.indices)
    assert ds.notes("calibration") == []


def test_too_few_samples_for_the_classes_and_too_many_asked_are_said(sorted_folder):
    few = from_spec(sorted_folder, SHAPE, size=4)
    (line,) = few.notes("calibration")
    assert "4 samples cannot cover the data's 10 classes; 6 left out" in line and "cat_" in line
    assert len(few.describe()["sampling"]["missing_classes"]) == 6
    many = from_spec(sorted_folder, SHAPE, size=1000)
    assert many.describe()["sampling"]["strategy"] == "all"
    assert many.notes("--n") == [
        "--n: the data has 300 samples, 1000 were asked for; using 300 (pass more data or a smaller count to silence this)"
    ]


def test_a_rare_class_is_not_left_out_when_the_count_allows():
    labels = np.array([0] * 500 + [1] * 490 + [2] * 1)
    sel = choose(labels, 10, len(labels), seed=0)
    assert sel.per_class == {"0": 5, "1": 4, "2": 1} and not sel.missing
    assert len(sel.indices) == 10 and len(set(sel.indices.tolist())) == 10
    for seed in range(20):  # always n samples, never more than a class has
        s = choose(labels, 7, len(labels), seed)
        assert len(s.indices) == 7 and np.bincount(labels[s.indices], minlength=3)[2] <= 1


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_npz_members_are_read_row_by_row_as_numpy_reads_them(tmp_path, save):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 12, 12, 3), dtype=np.uint8)
    y = np.arange(40) % 4
    save(tmp_path / "d.npz", x=x, y=y)
    src = ArraySource(tmp_path / "d.npz")
    picked = [0, 5, 6, 39]
    rows = list(src.read(picked))
    assert all(np.array_equal(r, x[i]) and lab == y[i] for i, (r, lab) in zip(picked, rows))
    assert np.array_equal(src.labels(), y)


def test_a_float_npz_with_a_nan_deep_inside_is_refused(tmp_path):
    x = np.zeros((600, 16, 16, 3), np.float32)
    x[577, 3, 3, 1] = np.nan
    np.savez_compressed(tmp_path / "f.npz", x=x)
    from resnet_deploy.errors import InputError

    with pytest.raises(InputError, match="contains NaN or Inf values"):
        ArraySource(tmp_path / "f.npz")


def _peak_reading(path, n: int) -> int:
    ds = CalibrationSet(ArraySource(path), PreprocessSpec(64, 64), limit=n)
    tracemalloc.start()
    total = sum(len(x) for x, _ in ds.batches(16))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert total == n
    return peak


def test_reading_ten_times_the_samples_does_not_take_more_memory(tmp_path):
    """A .npy of 2000 images (24 MB) is memory-mapped; batches are 16 preprocessed samples."""
    x = np.lib.format.open_memmap(tmp_path / "big.npy", "w+", np.uint8, (2000, 64, 64, 3))
    x[:] = np.random.default_rng(0).integers(0, 256, x.shape, dtype=np.uint8)
    x.flush()
    del x
    small, large = _peak_reading(tmp_path / "big.npy", 200), _peak_reading(tmp_path / "big.npy", 2000)
    batch_bytes = 16 * 64 * 64 * 3 * 4
    assert large < 1.15 * small + batch_bytes, (small, large)
    assert large < 10 * batch_bytes  # nowhere near the 2000 x 49 KB the samples take as float32
