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
from typing import Any, Iterator

import numpy as np

from resnet_deploy.errors import InputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")

# The digits split is fixed: the trained `digits` model never saw the test split, and
# calibration uses the train split, so parity accuracy is measured on held-out images.
DIGITS_TEST_FRACTION = 0.25
DIGITS_SPLIT_SEED = 0
DIGITS_VAL_SIZE = 360


class Source:
    """Base: a finite, re-readable sequence of (image, label), read by ascending index."""

    name = "source"
    preprocessed = False

    def __len__(self) -> int:
        raise NotImplementedError

    def read(self, indices: Any) -> Iterator[tuple[np.ndarray, int | None]]:
        """The samples at ascending indices, in order, one decoded at a time."""
        raise NotImplementedError

    def __iter__(self) -> Iterator[tuple[np.ndarray, int | None]]:
        return self.read(range(len(self)))

    def labels(self) -> np.ndarray | None:
        """Every sample's label without decoding a sample (what stratified sampling reads), or None."""
        return None

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

    split: "train" (what the shipped model was trained on), "test" (held out) or "all" (stratified,
    fixed seed); train is cut in two disjoint parts: "val", its last DIGITS_VAL_SIZE images
    (validation for accuracy budgets), and "calib", the rest (what calibration samples from).
    """
    if split not in ("train", "calib", "val", "test", "all"):
        raise InputError(f"Unrecognized digits split={split!r}. Supported: train, calib, val, test, all.")
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
    val = DIGITS_VAL_SIZE
    pick = {"train": train_idx, "calib": train_idx[:-val], "val": train_idx[-val:], "test": test_idx}[split]
    return images[pick], labels[pick]


@dataclass
class DigitsSource(Source):
    """scikit-learn's digits images (real handwriting shipped inside the package)."""

    split: str = "calib"
    name = "digits"

    def __post_init__(self) -> None:
        self._images, self._labels = load_digits_split(self.split)

    def __len__(self) -> int:
        return len(self._labels)

    def read(self, indices: Any) -> Iterator[tuple[np.ndarray, int | None]]:
        for i in indices:
            yield self._images[i], int(self._labels[i])

    def labels(self) -> np.ndarray:
        return self._labels

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

    def read(self, indices: Any) -> Iterator[tuple[np.ndarray, int | None]]:
        """Image i is the i-th draw of the seeded generator, whichever images are read."""
        rng, at = np.random.default_rng(self.seed), 0
        shape = (self.height, self.width, self.channels)
        for i in indices:
            for _ in range(int(i) - at):  # the skipped images' draws, one by one as when they are read
                rng.integers(0, 256, shape, dtype=np.uint8)
            at = int(i) + 1
            yield rng.integers(0, 256, shape, dtype=np.uint8), None

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
    option: str = "--calib"  # the option that named it, for messages
    name = "folder"
    _files: list[Path] = field(init=False, default_factory=list)
    _classes: list[str] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.root = Path(self.root).expanduser()
        if not self.root.is_dir():
            raise InputError(
                f"{self.option} folder {str(self.root)!r} does not exist; pass a folder of .jpg/.png images."
            )
        self._files = sorted(p for p in self.root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not self._files:
            raise InputError(
                f"{self.option} folder {str(self.root)!r} holds no .jpg/.png images; add some or pass another folder."
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

    def read(self, indices: Any) -> Iterator[tuple[np.ndarray, int | None]]:
        from PIL import Image, UnidentifiedImageError

        for i in indices:
            path = self._files[i]
            try:
                with Image.open(path) as im:  # reads the header only: the size is checked before decoding
                    check_pixels(path, *im.size)
                    img = np.asarray(im.convert("RGB"), dtype=np.uint8)
            except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
                raise InputError(f"Image {str(path)!r} cannot be read ({e}); remove or replace it.") from e
            yield img, (None if self._classes is None else self._classes.index(path.parent.name))

    def labels(self) -> np.ndarray | None:
        if self._classes is None:
            return None
        index = {c: i for i, c in enumerate(self._classes)}
        return np.array([index[p.parent.name] for p in self._files], np.int64)

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
