"""Samples from a .npy or .npz file, read a row at a time: a .npy is memory-mapped, an .npz
member is read from its zip entry (seeking forward), so a file of any size costs one sample of
memory. Checked when opened: dtype, shape, labels, and every float sample finite."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from resnet_deploy.calibration.sources import Source, whole_numbers
from resnet_deploy.errors import InputError

CHECK_ROWS = 256  # rows per finiteness check when a file is opened


class NpzRows:
    """One array member of an .npz, read row by row from its zip entry (no pickled objects)."""

    def __init__(self, path: Path, key: str) -> None:
        self.path, self.member = path, f"{key}.npy"
        with zipfile.ZipFile(path) as zf, zf.open(self.member) as f:
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read(f)
            self.offset = f.tell()
        if dtype.hasobject:
            raise ValueError("Object arrays cannot be loaded when allow_pickle=False")
        if fortran and len(shape) > 1:
            raise ValueError("a Fortran-ordered array; save it with numpy.savez after numpy.ascontiguousarray")
        self.shape, self.dtype = tuple(shape), dtype
        self.row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def rows(self, indices: Any) -> Iterator[np.ndarray]:
        """The rows at ascending indices, in order."""
        with zipfile.ZipFile(self.path) as zf, zf.open(self.member) as f:
            for i in indices:
                f.seek(self.offset + int(i) * self.row_bytes)
                row = np.frombuffer(f.read(self.row_bytes), self.dtype)
                yield row.reshape(self.shape[1:])


class MappedRows:
    """A .npy file, memory-mapped."""

    def __init__(self, path: Path) -> None:
        self.array = np.load(path, mmap_mode="r", allow_pickle=False)
        self.shape, self.dtype = self.array.shape, self.array.dtype

    def __len__(self) -> int:
        return self.shape[0]

    def rows(self, indices: Any) -> Iterator[np.ndarray]:
        for i in indices:
            yield np.asarray(self.array[int(i)])


def _open(path: Path) -> tuple[Any, np.ndarray | None]:
    """The sample rows and the labels (read whole: one int a sample)."""
    if path.suffix == ".npy":
        return MappedRows(path), None
    with np.load(path, allow_pickle=False) as z:
        xkey = next((k for k in ("x", "images", "inputs") if k in z.files), None)
        if xkey is None:
            raise InputError(f"{str(path)!r} has no 'x' or 'images' array (found {z.files}); save images under 'x'.")
        ykey = next((k for k in ("y", "labels") if k in z.files), None)
        y = z[ykey] if ykey else None
    return NpzRows(path, xkey), y


def _check(path: Path, x: Any, y: np.ndarray | None) -> np.ndarray | None:
    """Images (uint8) or model inputs (finite floats), N x H x W [x C]; labels whole numbers, one per image."""
    where = str(path)
    if x.dtype != np.uint8 and x.dtype.kind != "f":
        raise InputError(f"{where!r} holds {x.dtype} arrays; save uint8 images (0..255) or float32 model inputs.")
    if len(x.shape) not in (3, 4) or x.shape[0] == 0:
        raise InputError(f"Array in {where!r} has shape {x.shape}; expected N x H x W [x C] with N >= 1.")
    if x.dtype.kind == "f":
        for start in range(0, x.shape[0], CHECK_ROWS):
            chunk = np.stack(list(x.rows(range(start, min(start + CHECK_ROWS, x.shape[0])))))
            if not np.isfinite(chunk).all():
                raise InputError(f"{where!r} contains NaN or Inf values; model inputs must be finite numbers.")
    if y is None:
        return None
    if y.ndim != 1 or len(y) != x.shape[0]:
        raise InputError(f"{where!r}: {x.shape[0]} images but labels of shape {y.shape}; save one label per image.")
    if not whole_numbers(y):
        raise InputError(f"{where!r}: labels are {y.dtype} values, not whole class numbers; save integer labels.")
    return y.astype(np.int64)


@dataclass
class ArraySource(Source):
    """A .npy array (N,H,W[,C]) or a .npz with 'x'/'images' (and optional 'y'/'labels').

    uint8 arrays are images and go through the PreprocessSpec; float arrays are taken as
    model inputs already (preprocessed) and must match the model's input shape.
    """

    path: Path
    option: str = "--calib"  # the option that named it, for messages
    name = "array"

    def __post_init__(self) -> None:
        self.path = Path(self.path).expanduser()
        if not self.path.is_file():
            raise InputError(f"{self.option} file {str(self.path)!r} does not exist; pass an existing .npy/.npz file.")
        try:
            x, y = _open(self.path)
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
        self._y = _check(self.path, x, y)
        self._x = x
        self.preprocessed = x.dtype != np.uint8

    def __len__(self) -> int:
        return self._x.shape[0]

    def read(self, indices: Any) -> Iterator[tuple[np.ndarray, int | None]]:
        for i, row in zip(indices, self._x.rows(indices)):
            yield row, (None if self._y is None else int(self._y[i]))

    def labels(self) -> np.ndarray | None:
        return self._y

    @property
    def has_labels(self) -> bool:
        return self._y is not None

    def describe(self) -> dict:
        return {
            "kind": "array",
            "path": str(self.path),
            "count": len(self),
            "dtype": str(self._x.dtype),
            "preprocessed": self.preprocessed,
        }
