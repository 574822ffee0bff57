"""One preprocessing spec (size, channel order, scale, mean/std), recorded in every manifest."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from resnet_deploy.errors import InputError

_CHANNEL_ORDERS = ("rgb", "bgr", "gray")


@dataclass(frozen=True)
class PreprocessSpec:
    """uint8 HWC image -> float32 model input: resize, reorder channels, x*scale, (x-mean)/std.

    Sources hand over RGB (or single-channel) uint8 images; this spec is the only place
    where they become model inputs, so calibration, parity and device self-tests agree.
    """

    height: int
    width: int
    channels: str = "rgb"
    scale: float = 1.0 / 255.0
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)

    def __post_init__(self) -> None:
        if self.channels not in _CHANNEL_ORDERS:
            raise InputError(f"Unrecognized channel order {self.channels!r}. Supported: {', '.join(_CHANNEL_ORDERS)}.")
        if self.height < 1 or self.width < 1:
            raise InputError(f"Preprocess size {self.height}x{self.width} must be positive.")
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))
        if any(s == 0 for s in self.std):
            raise InputError(f"Preprocess std {self.std} contains 0; pass a non-zero std.")

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
            raise InputError(f"Model input shape {shape} has no fixed height/width; build the model with a fixed input size.")
        if c not in (1, 3):
            raise InputError(f"Model input has {c} channels; only 1 (gray) or 3 (RGB/BGR) are supported.")
        kwargs: dict = {"height": int(h), "width": int(w), "channels": "gray" if c == 1 else "rgb"}
        kwargs.update(overrides)
        return cls(**kwargs)  # type: ignore[arg-type]

    def to_dict(self) -> dict:
        return {"kind": "image", "layout": "NHWC", **asdict(self)}

    def apply(self, image: np.ndarray) -> np.ndarray:
        """Turn one uint8 image (HxW, HxWx1 or HxWx3, RGB) into a float32 HxWxC model input."""
        from PIL import Image  # lazy: Pillow is only needed when images are preprocessed

        img = np.asarray(image)
        if img.ndim == 3 and img.shape[2] == 1:
            img = img[:, :, 0]
        if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] != 3):
            raise InputError(f"Image of shape {img.shape} is not HxW, HxWx1 or HxWx3.")
        if img.dtype != np.uint8:
            raise InputError(f"Image dtype {img.dtype} is not uint8; convert images to 8-bit before preprocessing.")
        pil = Image.fromarray(img)
        pil = pil.convert("L" if self.channels == "gray" else "RGB")
        if pil.size != (self.width, self.height):
            pil = pil.resize((self.width, self.height), Image.BILINEAR)
        x = np.asarray(pil, dtype=np.float32)
        if x.ndim == 2:
            x = x[:, :, None]
        if self.channels == "bgr":
            x = x[:, :, ::-1]
        x = x * np.float32(self.scale)
        x = (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(x, dtype=np.float32)
