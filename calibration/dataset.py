"""CalibrationSet: a re-readable, framework-neutral, hashed set of model inputs.

Modelled on nncf.Dataset(source, transform_fn): the set holds a Source and one
PreprocessSpec and can be iterated any number of times; each target adapts it inside its own
module (TFLite representative_dataset, ORT CalibrationDataReader, nncf.Dataset).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterator

import numpy as np

from resnet_deploy.calibration.preprocess import PreprocessSpec
from resnet_deploy.calibration.sources import ArraySource, DigitsSource, ImageFolderSource, Source, SyntheticSource
from resnet_deploy.errors import InputError


class CalibrationSet:
    """Preprocessed float32 samples (H, W, C) from a Source, optionally limited to n."""

    def __init__(self, source: Source, spec: PreprocessSpec, limit: int | None = None) -> None:
        self.source = source
        self.spec = spec
        self.limit = None if limit is None else min(int(limit), len(source))
        self._cache: tuple[np.ndarray, np.ndarray | None] | None = None
        self._fingerprint: str | None = None
        self.requested: int | None = None  # what the caller asked for (from_spec), if more than the data has

    def shortfall(self, what: str) -> str | None:
        """One line when the data has fewer samples than were asked for, else None."""
        if self.requested is not None and len(self) < self.requested:
            return (
                f"{what}: the data has {len(self)} samples, {self.requested} were asked for; using {len(self)} "
                "(pass more data or a smaller count to silence this)"
            )
        return None

    def __len__(self) -> int:
        return len(self.source) if self.limit is None else self.limit

    def take(self, n: int) -> "CalibrationSet":
        """The first n samples, as a new set (same source and spec)."""
        if n < 1:
            raise InputError(f"take(n={n}): n must be >= 1.")
        return CalibrationSet(self.source, self.spec, n if self.limit is None else min(n, self.limit))

    @property
    def has_labels(self) -> bool:
        return self.source.has_labels

    def _iter_samples(self) -> Iterator[tuple[np.ndarray, int | None]]:
        expected = (self.spec.height, self.spec.width, self.spec.num_channels)
        for i, (img, label) in enumerate(self.source):
            if self.limit is not None and i >= self.limit:
                return
            if self.source.preprocessed:
                x = np.asarray(img, dtype=np.float32)
                if x.ndim == 2:
                    x = x[:, :, None]
            else:
                x = self.spec.apply(img)
            if x.shape != expected:
                where = self.source.describe().get("path", self.source.name)
                raise InputError(
                    f"Sample {i} of {where} has shape {x.shape}, model expects {expected}; "
                    "pass uint8 images (they are resized) or float arrays of the model's input shape."
                )
            if not np.isfinite(x).all():
                raise InputError(
                    f"Sample {i} of {self.source.name} data contains NaN or Inf; clean the data before calibrating."
                )
            yield x, label

    def __iter__(self) -> Iterator[np.ndarray]:
        """Yield one float32 (H, W, C) sample at a time; re-readable."""
        if self._cache is not None:
            yield from self._cache[0]
            return
        for x, _ in self._iter_samples():
            yield x

    def arrays(self) -> tuple[np.ndarray, np.ndarray | None]:
        """All samples stacked (N, H, W, C) float32, and labels (N,) or None. Cached."""
        if self._cache is None:
            xs, ys = [], []
            for x, y in self._iter_samples():
                xs.append(x)
                ys.append(y)
            if not xs:
                raise InputError(
                    f"Calibration data from {self.source.name} is empty; pass a source with at least one image."
                )
            labels = np.asarray(ys, dtype=np.int64) if self.has_labels else None
            self._cache = (np.stack(xs), labels)
        return self._cache

    def preprocess_dict(self) -> dict:
        """The preprocessing actually applied, for manifests."""
        if self.source.preprocessed:
            return {"kind": "none", "layout": "NHWC", "note": "float arrays were taken as model inputs as they are"}
        return self.spec.to_dict()

    @property
    def is_loaded(self) -> bool:
        """True once the samples are preprocessed and hashed (later uses are free)."""
        return self._fingerprint is not None

    @property
    def fingerprint(self) -> str:
        """sha256 over the preprocessing spec and every sample's float32 bytes, in order."""
        if self._fingerprint is None:
            self._fingerprint = self._hash()
        return self._fingerprint

    def _hash(self) -> str:
        x, _ = self.arrays()
        h = hashlib.sha256()
        h.update(json.dumps(self.preprocess_dict(), sort_keys=True).encode())
        h.update(np.ascontiguousarray(x, dtype="<f4").tobytes())
        return h.hexdigest()

    def describe(self) -> dict:
        return {
            "source": self.source.describe(),
            "count": len(self),
            "preprocess": self.preprocess_dict(),
            "fingerprint_sha256": self.fingerprint,
        }


def make_source(calib: str | Path, input_shape: tuple, size: int, seed: int = 0, digits_split: str = "train") -> Source:
    """Pick a Source from a CLI-style value: digits, synthetic, a folder or a .npy/.npz file."""
    key = str(calib)
    if key == "digits":
        return DigitsSource(split=digits_split)
    if key == "synthetic":
        _, h, w, c = input_shape
        return SyntheticSource(count=size, height=int(h), width=int(w), channels=int(c), seed=seed)
    path = Path(key).expanduser()
    if path.is_dir():
        return ImageFolderSource(path)
    if path.suffix.lower() in (".npy", ".npz"):
        return ArraySource(path)
    if path.exists():
        raise InputError(
            f"Calibration file {key!r} is not a .npy/.npz file or image folder; pass digits, synthetic, a folder or a .npy/.npz."
        )
    raise InputError(
        f"Calibration source {key!r} does not exist; pass digits, synthetic, an image folder or a .npy/.npz file."
    )


def check_calib_value(calib: str | Path) -> None:
    """Fail early on a calibration value that cannot work (missing path, empty folder, bad file)."""
    if str(calib) not in ("digits", "synthetic"):
        make_source(calib, (None, 1, 1, 3), 1)


def from_spec(
    calib: str | Path,
    input_shape: tuple,
    size: int = 200,
    seed: int = 0,
    spec: PreprocessSpec | None = None,
    digits_split: str = "train",
) -> CalibrationSet:
    """Build the CalibrationSet for a model input shape (N, H, W, C) from a CLI-style value."""
    spec = spec or PreprocessSpec.for_input_shape(tuple(input_shape))
    source = make_source(calib, input_shape, size, seed, digits_split)
    ds = CalibrationSet(source, spec).take(size)
    ds.requested = size
    return ds
