"""Where representative images come from: an image folder, a .npy/.npz array, scikit-learn's
digits, or synthetic noise with a seed.

Every source yields (image, label) pairs: images are uint8 HxWxC (RGB or gray) that the one
PreprocessSpec turns into model inputs, or, for float arrays, samples that already are model
inputs (`preprocessed = True`). Labels are ints or None.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from resnet_deploy.errors import InputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")

# The digits split is fixed: the trained `digits` model never saw the test split, and
# calibration uses the train split, so parity accuracy is measured on held-out images.
DIGITS_TEST_FRACTION = 0.25
DIGITS_SPLIT_SEED = 0
DIGITS_VAL_SIZE = 360


class Source:
    """Base: a finite, re-readable sequence of (image, label)."""

    name = "source"
    preprocessed = False

    def __len__(self) -> int:
        raise NotImplementedError

    def __iter__(self) -> Iterator[tuple[np.ndarray, int | None]]:
        raise NotImplementedError

    @property
    def has_labels(self) -> bool:
        return False

    @property
    def class_names(self) -> list[str] | None:
        return None

    def describe(self) -> dict:
        return {"kind": self.name}


def load_digits_split(split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 handwritten digits as uint8 images (0..255) and int labels.

    split: "train", "test" or "all" (stratified, fixed seed); "val" is the last DIGITS_VAL_SIZE
    images of train (validation for accuracy budgets: calibration reads train from the start).
    """
    if split not in ("train", "val", "test", "all"):
        raise InputError(f"Unrecognized digits split={split!r}. Supported: train, val, test, all.")
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    images = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)  # pixel values are 0..16
    labels = d.target.astype(np.int64)
    if split == "all":
        return images, labels
    idx = np.arange(len(labels))
    train_idx, test_idx = train_test_split(
        idx, test_size=DIGITS_TEST_FRACTION, random_state=DIGITS_SPLIT_SEED, stratify=labels
    )
    pick = {"train": train_idx, "val": train_idx[-DIGITS_VAL_SIZE:], "test": test_idx}[split]
    return images[pick], labels[pick]


@dataclass
class DigitsSource(Source):
    """scikit-learn's digits images (real handwriting shipped inside the package)."""

    split: str = "train"
    name = "digits"

    def __post_init__(self) -> None:
        self._images, self._labels = load_digits_split(self.split)

    def __len__(self) -> int:
        return len(self._labels)

    def __iter__(self):
        for img, lab in zip(self._images, self._labels):
            yield img, int(lab)

    @property
    def has_labels(self) -> bool:
        return True

    @property
    def class_names(self) -> list[str]:
        return [str(i) for i in range(10)]

    def describe(self) -> dict:
        return {
            "kind": "digits",
            "split": self.split,
            "split_seed": DIGITS_SPLIT_SEED,
            "test_fraction": DIGITS_TEST_FRACTION,
        }


@dataclass
class SyntheticSource(Source):
    """Uniform uint8 noise images with a seed: fine for fp32 checks, useless for accuracy."""

    count: int
    height: int
    width: int
    channels: int = 3
    seed: int = 0
    name = "synthetic"

    def __len__(self) -> int:
        return self.count

    def __iter__(self):
        rng = np.random.default_rng(self.seed)
        for _ in range(self.count):
            yield rng.integers(0, 256, (self.height, self.width, self.channels), dtype=np.uint8), None

    def describe(self) -> dict:
        return {
            "kind": "synthetic",
            "count": self.count,
            "seed": self.seed,
            "shape": [self.height, self.width, self.channels],
        }


_HEADERS_CHECKED: set[tuple] = set()  # folders (files, sizes, mtimes) whose image headers passed in this process
MAX_IMAGE_PIXELS = 50_000_000  # ~7000x7000 (a 48 MP phone photo fits); decoded as RGB it is 150 MB


def check_pixels(path: Path, width: int, height: int) -> None:
    """Refuse, from its header, an image too large to decode (a decompression bomb declares
    30000x30000 in a few KB): one line, before any pixel is decoded."""
    if width * height > MAX_IMAGE_PIXELS:
        raise InputError(
            f"Image {str(path)!r} declares {width}x{height} pixels (more than {MAX_IMAGE_PIXELS:,}); "
            "resize it or remove it from the folder."
        )


def natural_key(name: str) -> list:
    """Sort key that orders "2" before "10" (and "class2" before "class10")."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name) if part]


@dataclass
class ImageFolderSource(Source):
    """jpg/png files under a folder (sorted); class subfolders give labels."""

    root: Path
    name = "folder"
    _files: list[Path] = field(init=False, default_factory=list)
    _classes: list[str] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.root = Path(self.root).expanduser()
        if not self.root.is_dir():
            raise InputError(
                f"Calibration folder {str(self.root)!r} does not exist; pass a folder of .jpg/.png images."
            )
        self._files = sorted(p for p in self.root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not self._files:
            raise InputError(
                f"Calibration folder {str(self.root)!r} holds no .jpg/.png images; add some or pass --calib digits."
            )
        parents = {p.parent for p in self._files}
        if all(p.parent != self.root for p in self._files) and all(pp.parent == self.root for pp in parents):
            self._classes = sorted((pp.name for pp in parents), key=natural_key)
        self._check_headers()

    def _check_headers(self) -> None:
        """Every image's header (its format and size; no pixel is decoded): an unreadable file or
        a decompression bomb is one line now, before any model loads. A folder whose files are
        unchanged since they were checked in this process is not read again (a command checks its
        data before loading the model, then builds the same source)."""
        from PIL import Image, UnidentifiedImageError

        key = tuple((str(p), st.st_size, st.st_mtime_ns) for p in self._files for st in (p.stat(),))
        if key in _HEADERS_CHECKED:
            return
        for path in self._files:
            try:
                with Image.open(path) as im:
                    check_pixels(path, *im.size)
            except Image.DecompressionBombError as e:  # Pillow's own guard, above ours
                raise InputError(
                    f"Image {str(path)!r} declares too many pixels ({e}); resize it or remove it from the folder."
                ) from None
            except (UnidentifiedImageError, OSError) as e:
                raise InputError(f"Image {str(path)!r} cannot be read ({e}); remove or replace it.") from None
        _HEADERS_CHECKED.add(key)

    def __len__(self) -> int:
        return len(self._files)

    def __iter__(self):
        from PIL import Image, UnidentifiedImageError

        for path in self._files:
            try:
                with Image.open(path) as im:  # reads the header only: the size is checked before decoding
                    check_pixels(path, *im.size)
                    img = np.asarray(im.convert("RGB"), dtype=np.uint8)
            except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
                raise InputError(f"Image {str(path)!r} cannot be read ({e}); remove or replace it.") from e
            label = self._classes.index(path.parent.name) if self._classes else None
            yield img, label

    @property
    def has_labels(self) -> bool:
        return self._classes is not None

    @property
    def class_names(self) -> list[str] | None:
        return self._classes

    def describe(self) -> dict:
        return {"kind": "folder", "path": str(self.root), "count": len(self._files), "classes": self._classes}


def whole_numbers(labels: np.ndarray) -> bool:
    """Integer labels, or floats that are all finite whole numbers (the one test of "whole")."""
    kind = labels.dtype.kind
    return kind in "iu" or (kind == "f" and bool(np.isfinite(labels).all() and (labels == np.round(labels)).all()))


def _checked_arrays(path: Path, x: np.ndarray, y: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Images (uint8) or model inputs (finite floats), N x H x W [x C]; labels whole numbers, one per image."""
    where = str(path)
    if x.dtype != np.uint8 and x.dtype.kind != "f":
        raise InputError(f"{where!r} holds {x.dtype} arrays; save uint8 images (0..255) or float32 model inputs.")
    if x.ndim not in (3, 4) or len(x) == 0:
        raise InputError(f"Array in {where!r} has shape {x.shape}; expected N x H x W [x C] with N >= 1.")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise InputError(f"{where!r} contains NaN or Inf values; model inputs must be finite numbers.")
    if y is None:
        return x, None
    if y.ndim != 1 or len(y) != len(x):
        raise InputError(f"{where!r}: {len(x)} images but labels of shape {y.shape}; save one label per image.")
    if not whole_numbers(y):
        raise InputError(f"{where!r}: labels are {y.dtype} values, not whole class numbers; save integer labels.")
    return x, y.astype(np.int64)


@dataclass
class ArraySource(Source):
    """A .npy array (N,H,W[,C]) or a .npz with 'x'/'images' (and optional 'y'/'labels').

    uint8 arrays are images and go through the PreprocessSpec; float arrays are taken as
    model inputs already (preprocessed) and must match the model's input shape.
    """

    path: Path
    name = "array"

    def __post_init__(self) -> None:
        self.path = Path(self.path).expanduser()
        if not self.path.is_file():
            raise InputError(f"Calibration file {str(self.path)!r} does not exist; pass an existing .npy/.npz file.")
        try:
            if self.path.suffix == ".npy":
                x, y = np.load(self.path, allow_pickle=False), None
            else:
                with np.load(self.path, allow_pickle=False) as z:
                    xkey = next((k for k in ("x", "images", "inputs") if k in z.files), None)
                    if xkey is None:
                        raise InputError(
                            f"{str(self.path)!r} has no 'x' or 'images' array (found {z.files}); save images under 'x'."
                        )
                    x = z[xkey]
                    ykey = next((k for k in ("y", "labels") if k in z.files), None)
                    y = z[ykey] if ykey else None
        except InputError:
            raise
        except Exception as e:  # noqa: BLE001 - corrupt user file
            why = (
                "not in numpy's array format (numpy would read it as pickled objects, which we never load)"
                if "pickle" in str(e)
                else str(e)[:160]
            )
            raise InputError(
                f"{str(self.path)!r} cannot be read as numpy arrays: {why}; save images with "
                "numpy.save(FILE.npy, x) or numpy.savez(FILE.npz, x=x, y=labels)."
            ) from e
        self._x, self._y = _checked_arrays(self.path, x, y)
        self.preprocessed = self._x.dtype != np.uint8

    def __len__(self) -> int:
        return len(self._x)

    def __iter__(self):
        for i in range(len(self._x)):
            yield self._x[i], (None if self._y is None else int(self._y[i]))

    @property
    def has_labels(self) -> bool:
        return self._y is not None

    def describe(self) -> dict:
        return {
            "kind": "array",
            "path": str(self.path),
            "count": len(self._x),
            "dtype": str(self._x.dtype),
            "preprocessed": self.preprocessed,
        }
