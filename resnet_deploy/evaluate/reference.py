"""The parity reference: inputs, labels and the Keras outputs on them, saved and replayed.

A reference made from data is streamed: Keras runs batch by batch and only its outputs (a few
floats a sample) and labels are kept; the inputs are re-read from the source whenever they are
needed, so memory does not grow with the number of samples. `parity --save-reference ref.npz`
keeps one (written batch by batch); `parity --reference ref.npz` replays it later or on another
machine without importing TensorFlow; a bundle carries its (small) reference in memory.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from resnet_deploy.errors import InputError
from resnet_deploy.store.fsutil import write_bytes_atomic, write_npz_streamed
from resnet_deploy.progress import Progress

REFERENCE_FORMAT = 1
BATCH = 32  # samples per batch: the Keras reference's batch and parity's unit of work

Batches = Iterator[tuple[np.ndarray, Any, np.ndarray]]  # (inputs, labels or None, Keras outputs)


@dataclass
class Reference:
    """Inputs, labels and the Keras outputs on them, plus what produced them."""

    x: Any
    labels: Any
    outputs: Any
    meta: dict

    @property
    def count(self) -> int:
        return len(self.outputs)

    @property
    def fingerprints(self) -> list[str]:
        from resnet_deploy.inputs.samples import sample_fingerprints

        return sample_fingerprints(self.x)

    def batches(self, size: int = BATCH) -> Batches:
        for s in range(0, self.count, size):
            yield (
                self.x[s : s + size],
                None if self.labels is None else self.labels[s : s + size],
                self.outputs[s : s + size],
            )

    def arrays(self) -> dict[str, np.ndarray]:
        """x, outputs and labels (if any): what a bundle's reference.npz holds."""
        arrays = {"x": self.x, "outputs": self.outputs}
        if self.labels is not None:
            arrays["labels"] = self.labels
        return arrays

    def save(self, path: Path) -> None:
        """Atomic .npz: x, labels (if any), outputs, meta (JSON)."""
        buf = io.BytesIO()
        np.savez_compressed(buf, **self.arrays(), meta=np.array(json.dumps(self.meta)))  # type: ignore[arg-type]  # numpy stubs read **arrays as allow_pickle
        write_bytes_atomic(Path(path), buf.getvalue())

    @classmethod
    def load(cls, path: Path) -> "Reference":
        """Read and check a saved reference."""
        path = Path(path)
        if not path.is_file():
            raise InputError(
                f"Reference file {str(path)!r} does not exist; create one with `parity --save-reference FILE.npz`."
            )
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                ref = cls(z["x"], z["labels"] if "labels" in z.files else None, z["outputs"], meta)
        except Exception as e:  # noqa: BLE001 - corrupt user file
            raise InputError(
                f"Reference file {str(path)!r} is not a resnet-deploy reference ({e}); "
                "re-create it with --save-reference."
            ) from e
        ok = (
            isinstance(meta, dict)
            and meta.get("format") == REFERENCE_FORMAT
            and ref.x.ndim >= 2
            and isinstance(meta.get("model"), str)
            and isinstance(meta.get("source_sha256"), (str, type(None)))
            and ref.outputs.ndim >= 2
            and len(ref.x) == len(ref.outputs)
            and len(ref.x) > 0
            and ref.x.dtype == np.float32
            and ref.outputs.dtype.kind == "f"
            and (
                ref.labels is None
                or (ref.labels.ndim == 1 and ref.labels.dtype.kind in "iu" and len(ref.labels) == len(ref.x))
            )
            and np.isfinite(ref.x).all()
            and np.isfinite(ref.outputs).all()
        )
        if not ok:
            raise InputError(
                f"Reference file {str(path)!r} has an unknown format, mismatched or non-finite arrays; "
                "re-create it with --save-reference."
            )
        if ref.labels is not None and ref.outputs.ndim == 2:
            from resnet_deploy.inputs.contract import check_labels

            check_labels(ref.labels, int(ref.outputs.shape[1]))
        return ref


@dataclass
class StreamedReference:
    """Keras outputs and labels on a sample set whose inputs are re-read in batches."""

    data: Any  # the CalibrationSet the outputs were computed on, in its order
    labels: Any
    outputs: np.ndarray
    meta: dict
    fingerprints: list[str]  # each input's (inputs.samples), for held-out checks before any backend runs

    @property
    def count(self) -> int:
        return len(self.outputs)

    def batches(self, size: int = BATCH) -> Batches:
        at = 0
        for x, y in self.data.batches(size):
            yield x, y, self.outputs[at : at + len(x)]
            at += len(x)

    def materialize(self) -> Reference:
        """The inputs in memory too: for a bundle's small reference."""
        x = np.concatenate([b[0] for b in self.batches()])
        return Reference(x, self.labels, self.outputs, self.meta)

    def save(self, path: Path) -> None:
        """The same .npz as Reference.save, its inputs written batch by batch."""
        members = {
            "x": ((self.count, *self._input_shape()), np.float32, (b[0] for b in self.batches())),
            "outputs": (self.outputs.shape, self.outputs.dtype, iter([self.outputs])),
            "meta": ((), np.dtype(f"<U{len(json.dumps(self.meta))}"), iter([np.array(json.dumps(self.meta))])),
        }
        if self.labels is not None:
            members["labels"] = (self.labels.shape, self.labels.dtype, iter([self.labels]))
        write_npz_streamed(Path(path), members)

    def _input_shape(self) -> tuple[int, ...]:
        spec = self.data.spec
        return (spec.height, spec.width, spec.num_channels)


def keras_pass(model: Any, ds: Any, threads: int | None, progress: Progress) -> tuple[np.ndarray, Any, dict, list]:
    """Keras on every sample, batched; only outputs, labels and input fingerprints are kept."""
    from resnet_deploy.backend.runner import KerasRunner
    from resnet_deploy.inputs.samples import sample_fingerprints

    outputs: np.ndarray | None = None
    labels = np.empty(len(ds), np.int64) if ds.has_labels else None
    prints: list[str] = []
    at, t0 = 0, time.perf_counter()
    with KerasRunner(model, threads=threads) as r:
        for x, y in progress.track(ds.batches(BATCH), len(ds), "Keras reference", weight=len):
            out = r.predict(x, batch_size=BATCH)
            if outputs is None:
                outputs = np.empty((len(ds), *out.shape[1:]), np.float32)
            outputs[at : at + len(x)] = out
            prints += sample_fingerprints(x)
            if labels is not None:
                labels[at : at + len(x)] = y
            at += len(x)
        info = {**r.info(), "images_per_s": round(at / max(time.perf_counter() - t0, 1e-9), 2)}
    assert outputs is not None  # from_spec refuses empty data
    return outputs[:at], None if labels is None else labels[:at], info, prints


def parity_set(loaded: Any, data: str | None, n: int | None) -> Any:
    """The parity inputs under the model's contract: digits' held-out test split, or the data
    given; fewer than the data holds: a seeded, stratified sample."""
    from resnet_deploy.calibration.dataset import from_spec
    from resnet_deploy.inputs.contract import data_source

    source = data_source(data, loaded.ref, "--data")
    return from_spec(source, loaded.model.input_shape, size=n, digits_split="test", spec=loaded.spec, option="--data")


def finish_reference(loaded: Any, ds: Any, keras: tuple, allow_low_accuracy: bool) -> StreamedReference:
    """A reference from Keras' outputs, labels, runtime facts and input fingerprints on ds (one
    process's or merged from shards); refuses data on which Keras itself scores near chance."""
    from resnet_deploy.inputs.contract import check_reference_accuracy, prediction_summary

    outputs, labels, info, prints = keras
    check_reference_accuracy(outputs, labels, loaded.model, loaded.spec, allow_low_accuracy)
    info.update(trained=loaded.ref.trained, preprocessing=loaded.preprocessing(), batch=BATCH)
    if labels is None:
        info["predictions"] = prediction_summary(outputs)
    meta = {
        "format": REFERENCE_FORMAT,
        "model": loaded.name,
        "source_sha256": loaded.source_sha,
        "data": ds.describe(),
        "keras": info,
    }
    return StreamedReference(ds, labels, outputs, meta, prints)


def stream_reference(
    loaded: Any,
    data: str | None,
    n: int | None,
    threads: int | None,
    progress: Progress,
    allow_low_accuracy: bool = False,
) -> StreamedReference:
    """The parity inputs (parity_set), Keras run on them batch by batch, checked."""
    ds = parity_set(loaded, data, n)
    for note in ds.notes("--n"):
        progress.log(note)
    with progress.step(f"running the Keras reference on {len(ds)} samples"):
        keras = keras_pass(loaded.model, ds, threads, progress)
    return finish_reference(loaded, ds, keras, allow_low_accuracy)


def make_reference(
    loaded: Any,
    data: str | None,
    n: int | None,
    threads: int | None,
    progress: Progress,
    allow_low_accuracy: bool = False,
) -> Reference:
    """stream_reference with the inputs held in memory (a bundle ships them)."""
    return stream_reference(loaded, data, n, threads, progress, allow_low_accuracy).materialize()
