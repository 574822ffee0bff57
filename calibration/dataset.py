"""CalibrationSet: a re-readable, framework-neutral, hashed set of model inputs.

Modelled on nncf.Dataset(source, transform_fn): the set holds a Source and one
PreprocessSpec and can be iterated any number of times; each target adapts it inside its own
module (TFLite representative_dataset, ORT CalibrationDataReader, nncf.Dataset).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from resnet_deploy.calibration.preprocess import PreprocessSpec
from resnet_deploy.calibration.arrays import ArraySource
from resnet_deploy.calibration.sources import DigitsSource, ImageFolderSource, Source, SyntheticSource
from resnet_deploy.calibration.subset import Selection, choose, notes
from resnet_deploy.errors import InputError


CACHE_BYTES = 64 << 20  # a set this small is kept after its first read; a larger one is re-read per pass


class CalibrationSet:
    """Preprocessed float32 samples (H, W, C) from a Source: all of it, or a seeded, stratified
    subset of `limit` samples (calibration/subset.py). Read in bounded batches, any number of times."""

    def __init__(self, source: Source, spec: PreprocessSpec, limit: int | None = None, seed: int = 0) -> None:
        self.source = source
        self.spec = spec
        self.limit = None if limit is None else min(int(limit), len(source))
        self.seed = seed
        self._selection: Selection | None = None
        self._cache: tuple[np.ndarray, np.ndarray | None] | None = None
        self._fingerprint: str | None = None
        self.requested: int | None = None  # what the caller asked for (from_spec)
        self.everything = False  # the caller asked for no count: every sample of the data (from_spec)

    def __len__(self) -> int:
        return len(self.source) if self.limit is None else self.limit

    def take(self, n: int) -> "CalibrationSet":
        """n samples of this set's source (a seeded, stratified subset when fewer than it holds)."""
        if n < 1:
            raise InputError(f"take(n={n}): n must be >= 1.")
        return CalibrationSet(self.source, self.spec, n if self.limit is None else min(n, self.limit), self.seed)

    def subset(self, indices: Any) -> "CalibrationSet":
        """The samples at these indices of the source, in their order: a shard of this set."""
        part = CalibrationSet(self.source, self.spec, len(indices), self.seed)
        part._selection = replace(self.selection, indices=np.asarray(indices, dtype=np.int64))
        return part

    @property
    def selection(self) -> Selection:
        if self._selection is None:
            self._selection = choose(
                self.source.labels(), len(self), len(self.source), self.seed, self.source.class_names
            )
        return self._selection

    def notes(self, what: str) -> list[str]:
        """Lines to print: fewer samples than asked for, classes the subset leaves out."""
        return notes(self.selection, self.requested, what, self.everything)

    @property
    def has_labels(self) -> bool:
        return self.source.has_labels

    def _sample(self, i: int, img: np.ndarray) -> np.ndarray:
        expected = (self.spec.height, self.spec.width, self.spec.num_channels)
        if self.source.preprocessed:
            x = np.asarray(img, dtype=np.float32)
            x = x[:, :, None] if x.ndim == 2 else x
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
        return x

    def batches(self, size: int = 32) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        """(x, labels or None) batches of at most `size` samples, in order; nothing else is held."""
        if self._cache is not None:
            x, y = self._cache
            for s in range(0, len(x), size):
                yield x[s : s + size], None if y is None else y[s : s + size]
            return
        indices = self.selection.indices
        hasher = None if self._fingerprint is not None else self._hasher()  # a full pass hashes for free
        xs: list[np.ndarray] = []
        ys: list[int | None] = []
        for i, (img, label) in zip(indices, self.source.read(indices)):
            xs.append(self._sample(int(i), img))
            ys.append(label)
            if len(xs) == size:
                yield self._batch(xs, ys, hasher)
                xs, ys = [], []
        if xs:
            yield self._batch(xs, ys, hasher)
        if hasher is not None:
            self._fingerprint = hasher.hexdigest()

    def _batch(self, xs: list[np.ndarray], ys: list[int | None], hasher: Any) -> tuple[np.ndarray, np.ndarray | None]:
        x = np.stack(xs)
        if hasher is not None:
            hasher.update(np.ascontiguousarray(x, dtype="<f4").tobytes())
        return x, np.asarray(ys, dtype=np.int64) if self.has_labels else None

    def _hasher(self) -> Any:
        h = hashlib.sha256()
        h.update(json.dumps(self.preprocess_dict(), sort_keys=True).encode())
        return h

    def __iter__(self) -> Iterator[np.ndarray]:
        """Yield one float32 (H, W, C) sample at a time; re-readable."""
        for x, _ in self.batches():
            yield from x

    def arrays(self) -> tuple[np.ndarray, np.ndarray | None]:
        """All samples stacked (N, H, W, C) float32, and labels (N,) or None: for small sets
        (kept when under CACHE_BYTES); large ones are read with batches()."""
        if self._cache is not None:
            return self._cache
        parts = list(self.batches())
        if not parts:
            raise InputError(
                f"Calibration data from {self.source.name} is empty; pass a source with at least one image."
            )
        x = np.concatenate([p[0] for p in parts])
        y = None if parts[0][1] is None else np.concatenate([p[1] for p in parts])
        if x.nbytes <= CACHE_BYTES:
            self._cache = (x, y)
        return x, y

    def save_npy(self, path: Path) -> None:
        """Every sample into a .npy (N, H, W, C) float32, written batch by batch."""
        out = None
        at = 0
        for x, _ in self.batches():
            if out is None:
                out = np.lib.format.open_memmap(path, "w+", np.float32, (len(self), *x.shape[1:]))
            out[at : at + len(x)] = x
            at += len(x)
        if out is None:
            raise InputError(
                f"Calibration data from {self.source.name} is empty; pass a source with at least one image."
            )
        out.flush()
        del out

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
            for _ in self.batches():  # hashes as it reads
                pass
        assert self._fingerprint is not None
        return self._fingerprint

    def describe(self) -> dict:
        return {
            "source": self.source.describe(),
            "count": len(self),
            "sampling": self.selection.record(),
            "preprocess": self.preprocess_dict(),
            "fingerprint_sha256": self.fingerprint,
        }


def make_source(
    calib: str | Path,
    input_shape: tuple,
    size: int,
    seed: int = 0,
    digits_split: str = "calib",
    option: str = "--calib",
) -> Source:
    """Pick a Source from a CLI-style value: digits, synthetic, a folder or a .npy/.npz file.
    option: the option that gave the value (--calib, --data, --val), named in every message."""
    key = str(calib)
    if key == "digits":
        return DigitsSource(split=digits_split)
    if key == "synthetic":
        _, h, w, c = input_shape
        return SyntheticSource(count=size, height=int(h), width=int(w), channels=int(c), seed=seed)
    path = Path(key).expanduser()
    if path.is_dir():
        return ImageFolderSource(path, option)
    if not path.exists():
        raise InputError(
            f"{option} {key!r} does not exist; pass digits, synthetic, an image folder or a .npy/.npz file."
        )
    if path.suffix.lower() in (".npy", ".npz"):
        return ArraySource(path, option)
    raise InputError(
        f"{option} {key!r} is not a .npy/.npz file or image folder; pass digits, synthetic, a folder or a .npy/.npz."
    )


def check_calib_value(calib: str | Path, option: str = "--calib") -> None:
    """Fail early on a data value that cannot work (missing path, empty folder, bad file)."""
    if str(calib) not in ("digits", "synthetic"):
        make_source(calib, (None, 1, 1, 3), 1, option=option)


SYNTHETIC_COUNT = 200  # samples of synthetic data when no count is given (it has no size of its own)


def from_spec(
    calib: str | Path,
    input_shape: tuple,
    size: int | None = 200,
    seed: int = 0,
    spec: PreprocessSpec | None = None,
    digits_split: str = "calib",
    option: str = "--calib",
) -> CalibrationSet:
    """Build the CalibrationSet for a model input shape (N, H, W, C) from a CLI-style value.
    size None: every sample of the data (synthetic data: SYNTHETIC_COUNT)."""
    spec = spec or PreprocessSpec.for_input_shape(tuple(input_shape))
    source = make_source(calib, input_shape, size or SYNTHETIC_COUNT, seed, digits_split, option)
    ds = CalibrationSet(source, spec, seed=seed).take(len(source) if size is None else size)
    ds.requested, ds.everything = size, size is None
    return ds
