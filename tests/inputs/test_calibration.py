from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from resnet_deploy.calibration import CalibrationSet, PreprocessSpec, from_spec
from resnet_deploy.calibration.arrays import ArraySource
from resnet_deploy.inputs.samples import sample_fingerprints
from resnet_deploy.calibration.sources import ImageFolderSource, SyntheticSource
from resnet_deploy.errors import InputError

SHAPE = (None, 16, 16, 3)


def _png(path, value, size=(20, 12), mode="RGB"):
    arr = np.full((size[1], size[0], 3 if mode == "RGB" else 1), value, np.uint8)
    Image.fromarray(arr.squeeze()).convert(mode).save(path)


def test_image_folder_with_classes_resizes_to_rgb_and_labels(tmp_path):
    (tmp_path / "cat").mkdir()
    (tmp_path / "dog").mkdir()
    _png(tmp_path / "cat" / "a.png", 255, mode="L")  # grayscale file becomes RGB
    _png(tmp_path / "dog" / "b.jpg", 0)
    cs = from_spec(tmp_path, SHAPE, size=10)
    x, y = cs.arrays()
    assert x.shape == (2, 16, 16, 3) and x.dtype == np.float32
    np.testing.assert_allclose(x[0], 1.0)  # 255 * 1/255
    np.testing.assert_allclose(x[1], 0.0, atol=0.02)  # jpeg of black
    assert y.tolist() == [0, 1]
    assert cs.source.class_names == ["cat", "dog"]


def test_spec_mean_std_and_bgr():
    spec = PreprocessSpec(4, 4, channels="bgr", scale=1.0, mean=(1.0, 2.0, 3.0), std=(2.0, 2.0, 2.0))
    img = np.zeros((4, 4, 3), np.uint8)
    img[..., 0] = 10  # R
    img[..., 2] = 30  # B
    x = spec.apply(img)
    np.testing.assert_allclose(x[0, 0], [(30 - 1) / 2, (0 - 2) / 2, (10 - 3) / 2])
    assert spec.to_dict()["channels"] == "bgr"


def test_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="no .jpg/.png images"):
        ImageFolderSource(tmp_path)


def test_unreadable_image_is_a_clear_error(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"garbage")
    with pytest.raises(InputError, match="cannot be read"):
        from_spec(tmp_path, SHAPE).arrays()


def test_npz_with_nan_is_refused(tmp_path):
    x = np.zeros((3, 16, 16, 3), np.float32)
    x[1, 2, 3, 0] = np.nan
    np.savez(tmp_path / "d.npz", x=x)
    with pytest.raises(InputError, match="contains NaN or Inf"):
        from_spec(tmp_path / "d.npz", SHAPE).arrays()


def test_float_npy_of_wrong_shape_is_refused(tmp_path):
    np.save(tmp_path / "d.npy", np.zeros((3, 8, 8, 3), np.float32))
    with pytest.raises(InputError, match=r"shape \(8, 8, 3\)"):
        from_spec(tmp_path / "d.npy", SHAPE).arrays()


def test_uint8_npz_goes_through_preprocessing_with_labels(tmp_path):
    np.savez(tmp_path / "d.npz", images=np.full((5, 8, 8), 255, np.uint8), labels=np.arange(5))
    cs = from_spec(tmp_path / "d.npz", SHAPE)
    x, y = cs.arrays()
    assert x.shape == (5, 16, 16, 3) and y.tolist() == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(x, 1.0)


def test_fingerprint_is_stable_and_sensitive():
    spec = PreprocessSpec(16, 16)
    a = CalibrationSet(SyntheticSource(8, 16, 16, seed=1), spec)
    b = CalibrationSet(SyntheticSource(8, 16, 16, seed=1), spec)
    c = CalibrationSet(SyntheticSource(8, 16, 16, seed=2), spec)
    d = CalibrationSet(SyntheticSource(8, 16, 16, seed=1), PreprocessSpec(16, 16, scale=1 / 128))
    assert a.fingerprint == b.fingerprint
    assert len({a.fingerprint, c.fingerprint, d.fingerprint}) == 3


def test_take_and_reread():
    cs = CalibrationSet(SyntheticSource(10, 16, 16, seed=0), PreprocessSpec(16, 16))
    first = [x.copy() for x in cs]
    second = list(cs)
    assert len(first) == 10 and all(np.array_equal(p, q) for p, q in zip(first, second))
    t = cs.take(3)  # a seeded subset, not the first three
    picked = t.selection.indices
    assert len(t) == 3 and np.array_equal(t.arrays()[0], np.stack([first[i] for i in picked]))
    assert t.selection.strategy == "random" and list(picked) == sorted(picked)


def test_digits_calibration_samples_the_train_split_outside_validation():
    cs = from_spec("digits", (None, 32, 32, 3), size=50)
    x, y = cs.arrays()
    assert x.shape == (50, 32, 32, 3) and set(y.tolist()) == set(range(10))  # stratified: every digit
    assert cs.describe()["source"]["split"] == "calib" and cs.describe()["sampling"]["strategy"] == "stratified"
    assert 0.0 <= x.min() and x.max() <= 1.0
    val = from_spec("digits", (None, 32, 32, 3), size=500, digits_split="val")
    everything = from_spec("digits", (None, 32, 32, 3), size=2000)
    assert not set(sample_fingerprints(val.arrays()[0])) & set(sample_fingerprints(everything.arrays()[0]))


def test_corrupt_npz_and_unknown_source(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"nope")
    with pytest.raises(InputError, match="cannot be read"):
        ArraySource(tmp_path / "bad.npz")
    with pytest.raises(InputError, match="does not exist"):
        from_spec(tmp_path / "nothing", SHAPE)
