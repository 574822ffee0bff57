"""One preprocessing spec (resize, channel order, scale, mean/std), declared by the user or
chosen from the model, recorded in every manifest and applied identically wherever pixels
become model inputs (calibration, parity data, bundle references).

Presets reproduce keras.applications bit for bit on the same pixels: `imagenet-caffe` is
`keras.applications.resnet.preprocess_input` (RGB->BGR, minus the ImageNet BGR means),
`symmetric` is `resnet_v2.preprocess_input` (x/127.5 - 1), `imagenet-torch` is mode "torch".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from resnet_deploy.errors import InputError

CHANNEL_ORDERS = ("rgb", "bgr", "gray")
RESIZE_MODES = ("stretch", "center-crop")
CROP_FRACTION = 0.875  # center-crop: the shorter side goes to size / 0.875, then the central crop

# name -> (channel order or None for "the model's", scale, mean, std, what it is)
PRESETS: dict[str, tuple] = {
    "unit": (None, 1 / 255, (0.0,), (1.0,), "x/255: pixels in [0, 1]"),
    "raw": (None, 1.0, (0.0,), (1.0,), "0..255 as they are (for models that rescale inside)"),
    "symmetric": (None, 1 / 127.5, (1.0,), (1.0,), "x/127.5 - 1: pixels in [-1, 1] (resnet_v2, mode tf)"),
    "imagenet-caffe": (
        "bgr",
        1.0,
        (103.939, 116.779, 123.68),
        (1.0,),
        "RGB->BGR, minus ImageNet BGR means (keras.applications.resnet)",
    ),
    "imagenet-torch": (
        None,
        1 / 255,
        (0.485, 0.456, 0.406),
        (0.229, 0.224, 0.225),
        "x/255, ImageNet mean/std (mode torch)",
    ),
}


def _divisor(scale: float) -> float | None:
    """1/scale when it is a round number (255, 127.5): keras.applications divides by it, and
    x / 255 and x * (1/255) differ in the last float32 bit. None: multiply by scale."""
    d = 1.0 / scale
    return round(d, 4) if abs(round(d, 4) - d) < 1e-9 else None


@dataclass(frozen=True)
class PreprocessSpec:
    """uint8 HWC image -> float32 model input: resize, reorder channels, x*scale, (x-mean)/std.

    Sources hand over RGB (or single-channel) uint8 images; this spec is the only place where
    they become model inputs, so calibration, parity and device self-tests agree.
    """

    height: int
    width: int
    channels: str = "rgb"
    scale: float = 1.0 / 255.0
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    resize: str = "stretch"
    preset: str | None = "unit"

    def __post_init__(self) -> None:
        if self.channels not in CHANNEL_ORDERS:
            raise InputError(f"Unrecognized channel order {self.channels!r}. Supported: {', '.join(CHANNEL_ORDERS)}.")
        if self.resize not in RESIZE_MODES:
            raise InputError(f"Unrecognized resize={self.resize!r}. Supported: {', '.join(RESIZE_MODES)}.")
        if self.height < 1 or self.width < 1:
            raise InputError(f"Preprocess size {self.height}x{self.width} must be positive.")
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))
        values = (self.scale, *self.mean, *self.std)
        if not all(np.isfinite(values)) or not self.scale > 0 or any(s <= 0 for s in self.std):
            raise InputError(
                f"Preprocess scale {self.scale}, mean {self.mean} and std {self.std} must be finite, "
                "with scale and std > 0: fix --scale/--mean/--std."
            )
        for name in ("mean", "std"):
            n = len(getattr(self, name))
            if n not in (1, self.num_channels):
                raise InputError(
                    f"--{name} has {n} values but the model takes {self.num_channels} channel(s) "
                    f"({self.channels}); pass 1 or {self.num_channels} values."
                )

    @property
    def num_channels(self) -> int:
        return 1 if self.channels == "gray" else 3

    @classmethod
    def for_input_shape(cls, shape: tuple[int | None, ...], **overrides: object) -> "PreprocessSpec":
        """Default spec for an NHWC model input shape: resize to H x W, RGB (or gray), [0, 1]."""
        if len(shape) != 4:
            raise InputError(f"Model input shape {shape} is not NHWC (4 dims); only image models are supported.")
        _, h, w, c = shape
        if h is None or w is None:
            raise InputError(
                f"Model input shape {shape} has no fixed height/width; build the model with a fixed input size."
            )
        if c not in (1, 3):
            raise InputError(f"Model input has {c} channels; only 1 (gray) or 3 (RGB/BGR) are supported.")
        kwargs: dict = {"height": int(h), "width": int(w), "channels": "gray" if c == 1 else "rgb"}
        kwargs.update(overrides)
        return cls(**kwargs)

    def to_dict(self) -> dict:
        return {"kind": "image", "layout": "NHWC", **asdict(self)}

    def _resized(self, img: np.ndarray) -> "object":
        from PIL import Image  # lazy: Pillow is only needed when images are preprocessed

        pil = Image.fromarray(img).convert("L" if self.channels == "gray" else "RGB")
        if self.resize == "stretch":
            return (
                pil
                if pil.size == (self.width, self.height)
                else pil.resize((self.width, self.height), Image.Resampling.BILINEAR)
            )
        w, h = pil.size
        if w < self.width or h < self.height:
            raise InputError(
                f"Image of {w}x{h} is smaller than the {self.width}x{self.height} center crop; pass "
                "larger images or --resize stretch."
            )
        f = max(self.width / w, self.height / h) / CROP_FRACTION
        rw, rh = max(self.width, round(w * f)), max(self.height, round(h * f))
        pil = pil.resize((rw, rh), Image.Resampling.BILINEAR)
        left, top = (rw - self.width) // 2, (rh - self.height) // 2
        return pil.crop((left, top, left + self.width, top + self.height))

    def apply(self, image: np.ndarray) -> np.ndarray:
        """Turn one uint8 image (HxW, HxWx1 or HxWx3, RGB) into a float32 HxWxC model input."""
        img = np.asarray(image)
        if img.ndim == 3 and img.shape[2] == 1:
            img = img[:, :, 0]
        if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] != 3):
            raise InputError(f"Image of shape {img.shape} is not HxW, HxWx1 or HxWx3.")
        if img.dtype != np.uint8:
            raise InputError(f"Image dtype {img.dtype} is not uint8; convert images to 8-bit before preprocessing.")
        x = np.asarray(self._resized(img), dtype=np.float32)
        if x.ndim == 2:
            x = x[:, :, None]
        if self.channels == "bgr":
            x = x[:, :, ::-1]
        div = _divisor(self.scale)
        x = x / np.float32(div) if div is not None else x * np.float32(self.scale)
        x = (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)  # type: ignore[assignment]
        return np.ascontiguousarray(x, dtype=np.float32)
