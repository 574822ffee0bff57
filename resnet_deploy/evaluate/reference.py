"""The parity reference: inputs, labels and the Keras outputs on them, saved and replayed.

`parity --save-reference ref.npz` keeps one; `parity --reference ref.npz` replays it later or
on another machine without importing TensorFlow.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from resnet_deploy.errors import InputError
from resnet_deploy.store.fsutil import write_bytes_atomic
from resnet_deploy.progress import Progress

REFERENCE_FORMAT = 1


@dataclass
class Reference:
    """Inputs, labels and the Keras outputs on them, plus what produced them."""

    x: Any
    labels: Any
    outputs: Any
    meta: dict

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


def make_reference(
    loaded: Any, data: str | None, n: int, threads: int | None, progress: Progress, allow_low_accuracy: bool = False
) -> Reference:
    """Preprocess the parity inputs with the model's contract (digits: the held-out test split),
    run Keras on them, and refuse data on which Keras itself scores near chance."""
    from resnet_deploy.calibration.dataset import from_spec
    from resnet_deploy.inputs.contract import check_reference_accuracy, data_source, prediction_summary
    from resnet_deploy.backend.runner import KerasRunner

    model = loaded.model
    ds = from_spec(
        data_source(data, loaded.ref, "--data"), model.input_shape, size=n, digits_split="test", spec=loaded.spec
    )
    for note in ds.notes("--n"):
        progress.log(note)
    with progress.step(f"loading {len(ds)} parity inputs"):
        x, labels = ds.arrays()
    with progress.step(f"running the Keras reference on {len(x)} samples"):
        with KerasRunner(model, threads=threads) as r:
            outputs = r.predict(x)
            info = r.info()
    check_reference_accuracy(outputs, labels, model, loaded.spec, allow_low_accuracy)
    info.update(trained=loaded.ref.trained, preprocessing=loaded.preprocessing())
    if labels is None:
        info["predictions"] = prediction_summary(outputs)
    meta = {
        "format": REFERENCE_FORMAT,
        "model": loaded.name,
        "source_sha256": loaded.source_sha,
        "data": ds.describe(),
        "keras": info,
    }
    return Reference(x, labels, outputs, meta)
