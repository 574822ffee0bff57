"""The preprocessing contract on real photos (scikit-learn's and scikit-image's, shipped with the
packages): presets equal keras.applications bit for bit, center-crop keeps the aspect, channel
order, and one clear line for every bad declaration."""

from __future__ import annotations

import json

import numpy as np
import pytest

from resnet_deploy.calibration.preprocess import PreprocessSpec
from resnet_deploy.inputs.contract import PreprocessOptions, resolve
from resnet_deploy.errors import InputError


def _photos() -> dict[str, np.ndarray]:
    import skimage.data
    from sklearn.datasets import load_sample_images

    sk = load_sample_images()
    photos = {"china": sk.images[0], "flower": sk.images[1]}
    for name in ("astronaut", "coffee", "chelsea"):
        photos[name] = getattr(skimage.data, name)()
    return photos


PHOTOS = _photos()


def _spec(preset: str, size: int = 224, **kw) -> PreprocessSpec:
    from resnet_deploy.calibration.preprocess import PRESETS

    order, scale, mean, std, _ = PRESETS[preset]
    return PreprocessSpec(size, size, order or "rgb", scale, mean, std, preset=preset, **kw)


@pytest.mark.parametrize("photo", sorted(PHOTOS))
@pytest.mark.parametrize(
    "preset,keras_fn", [("imagenet-caffe", "resnet"), ("symmetric", "resnet_v2"), ("imagenet-torch", "torch")]
)
def test_presets_equal_keras_applications_bit_for_bit(photo, preset, keras_fn):
    import keras

    pixels = _spec("raw").apply(PHOTOS[photo])  # the resized 0..255 pixels, as float32
    assert pixels.min() >= 0 and pixels.max() <= 255 and np.array_equal(pixels, np.round(pixels))
    if keras_fn == "torch":
        want = keras.applications.imagenet_utils.preprocess_input(pixels.copy(), mode="torch")
    else:
        want = getattr(keras.applications, keras_fn).preprocess_input(pixels.copy())
    got = _spec(preset).apply(PHOTOS[photo])
    assert got.dtype == np.float32 and np.array_equal(got, np.asarray(want)), np.abs(got - want).max()


def test_unit_and_raw_scale_the_same_pixels():
    img = PHOTOS["coffee"]
    raw, unit = _spec("raw").apply(img), _spec("unit").apply(img)
    assert np.array_equal(unit, raw / np.float32(255))
    assert unit.min() >= 0 and unit.max() <= 1


def test_bgr_is_rgb_reversed_on_a_real_photo():
    rgb = _spec("raw").apply(PHOTOS["astronaut"])
    bgr = PreprocessSpec(224, 224, "bgr", 1.0, preset=None).apply(PHOTOS["astronaut"])
    assert np.array_equal(bgr, rgb[:, :, ::-1]) and not np.array_equal(bgr, rgb)


def test_center_crop_keeps_the_aspect_and_takes_the_centre():
    from PIL import Image

    img = PHOTOS["chelsea"]  # 300 x 451: landscape
    crop = PreprocessSpec(224, 224, "rgb", 1.0, resize="center-crop", preset=None).apply(img)
    h, w = img.shape[:2]
    side = round(224 / 0.875)  # the shorter side goes to 256
    rw, rh = round(w * side / h), side
    ref = np.asarray(Image.fromarray(img).resize((rw, rh), Image.BILINEAR), np.float32)
    top, left = (rh - 224) // 2, (rw - 224) // 2
    assert crop.shape == (224, 224, 3) and np.array_equal(crop, ref[top : top + 224, left : left + 224])
    stretched = PreprocessSpec(224, 224, "rgb", 1.0, preset=None).apply(img)
    assert np.abs(crop - stretched).mean() > 10  # not the same picture squeezed


def test_a_crop_larger_than_the_image_is_one_clear_error():
    with pytest.raises(InputError, match=r"^Image of 8x8 is smaller than the 32x32 center crop; pass larger "):
        PreprocessSpec(32, 32, resize="center-crop").apply(np.zeros((8, 8), np.uint8))


class _Model:
    def __init__(self, channels: int = 3, layers=()):
        self.input_shape = (None, 32, 32, channels)
        self.layers = list(layers)


@pytest.mark.parametrize(
    "options,needle",
    [
        (dict(preset="imagenet"), r"^Unrecognized preprocess='imagenet'. Supported: unit, raw, symmetric, "),
        (dict(mean="0.5,0.5"), r"^--mean has 2 values; pass 1 \(every channel\) or 3 \(RGB/BGR\).$"),
        (dict(std="1,2,x"), r"^--std '1,2,x' is not a comma list of numbers"),
        (dict(std="0"), r"std \(0.0,\) must be finite, with scale and std > 0"),
        (dict(resize="zoom"), r"^Unrecognized resize='zoom'. Supported: stretch, center-crop.$"),
        (dict(channel_order="rbg"), r"^Unrecognized channel order 'rbg'"),
    ],
)
def test_bad_declarations_are_one_line(options, needle):
    with pytest.raises(InputError, match=needle):
        resolve(PreprocessOptions(**options), _Model(), "m")


def test_a_grayscale_model_refuses_an_rgb_preset():
    for preset in ("imagenet-caffe", "imagenet-torch"):
        with pytest.raises(InputError, match=f"^--preprocess {preset} is for 3-channel RGB models; m takes 1"):
            resolve(PreprocessOptions(preset), _Model(channels=1), "m")
    spec, _ = resolve(PreprocessOptions("symmetric"), _Model(channels=1), "m")
    assert spec.channels == "gray" and spec.mean == (1.0,)


def test_the_model_decides_when_nobody_declares():
    class Rescaling:
        name = "rescale"

    Rescaling.__name__ = "Rescaling"
    spec, why = resolve(PreprocessOptions(), _Model(layers=[Rescaling()]), "m")
    assert spec.preset == "raw" and "first layer after its input is Rescaling (rescale)" in why
    spec, why = resolve(PreprocessOptions(), _Model(), "m", trained_with="imagenet-caffe")
    assert spec.preset == "imagenet-caffe" and spec.channels == "bgr" and why == "the preprocessing m is made for"
    spec, why = resolve(PreprocessOptions(), _Model(), "m")
    assert spec.preset == "unit" and "state your model's with --preprocess" in why
    spec, why = resolve(PreprocessOptions("imagenet-torch", resize="center-crop"), _Model(), "m")
    assert spec.preset == "imagenet-torch" and spec.resize == "center-crop" and "declared" in why
    spec, _ = resolve(PreprocessOptions("unit", mean="0.5"), _Model(), "m")
    assert spec.preset is None and spec.mean == (0.5,)  # no longer exactly the preset


def test_a_labelled_folder_of_real_photos_calibrates_and_checks(tmp_path, capsys):
    """The folder path of calibration and parity on real photos: two classes of scikit-image and
    scikit-learn photos as JPEG files, center-cropped, for an untrained built-in (speed only)."""
    from PIL import Image

    from tests.support.cli import run_cli

    for cls, names in (("animals", ("chelsea", "coffee")), ("scenes", ("china", "flower", "astronaut"))):
        (tmp_path / "photos" / cls).mkdir(parents=True)
        for name in names:
            Image.fromarray(PHOTOS[name]).save(tmp_path / "photos" / cls / f"{name}.jpg", quality=95)
    photos = str(tmp_path / "photos")
    model = ["--model", "resnet18", "--input-size", "64", "--classes", "2", "--width", "8"]
    code, out, err = run_cli(
        capsys,
        "parity",
        *model,
        "--targets",
        "onnx",
        "--precision",
        "fp32,int8",
        "--data",
        photos,
        "--calib",
        photos,
        "--resize",
        "center-crop",
        "--preprocess",
        "imagenet-torch",
        "--allow-low-accuracy",
        "--tol",
        "int8.cosine_min=0",
        "--tol",
        "int8.sqnr_min_db=-100",
        "--tol",
        "int8.top1_min=0",
        "--tol",
        "int8.acc_drop_max=100",
        "--out",
        str(tmp_path / "out"),
        "--json",
    )
    assert code == 0, err
    rep = json.loads(out)
    assert rep["samples"] == 5 and rep["data"]["source"]["classes"] == ["animals", "scenes"]
    pp = rep["reference"]["preprocessing"]
    assert (pp["preset"], pp["resize"], pp["why"]) == (
        "imagenet-torch",
        "center-crop",
        "declared with --preprocess; resize=center-crop given",
    )
    m = json.loads((tmp_path / "out" / "resnet18" / "onnx" / "int8" / "manifest.json").read_text())
    assert m["calibration"]["count"] == 5 and m["calibration"]["source"]["kind"] == "folder"
    assert m["preprocessing"]["resize"] == "center-crop"
