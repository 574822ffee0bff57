"""The `diagnose` command: the fp32 and int8 artifacts of each backend (reused or exported) and
diagnose.py's per-layer comparison on N inputs, written to OUT/<model>/diagnose.json."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from resnet_deploy.exporting import layermap
from resnet_deploy.quantize import rootcause
from resnet_deploy.quantize.diagnose import diagnose_backend
from resnet_deploy.errors import InputError
from resnet_deploy.store.fsutil import write_json_atomic
from resnet_deploy.progress import Progress
from resnet_deploy.store.record import Record


@dataclass(frozen=True)
class DiagnoseResult(Record):
    """Per backend ("<target>/int8"), each Keras layer's int8-vs-fp32 comparison (diagnose.py's
    record: ranked layers, first divergent, lost and fused layers), on `samples` inputs."""

    model: str
    samples: int
    sqnr_limit_db: float
    data: dict[str, Any]
    layers: list[str]
    backends: dict[str, dict[str, Any]]
    root_cause: dict[str, dict[str, Any]] = field(default_factory=dict)  # layer -> rootcause.py's row


def reference_model(loaded: Any, int8: Any, progress: Progress) -> Any:
    """The Keras model an int8 artifact's layers are compared with: the loaded one, or, for a
    repaired artifact, the loaded one with the same repairs remade (its layers' channels are
    rescaled), proven the same by the fingerprint its manifest recorded."""
    from resnet_deploy.exporting.pipeline import with_repairs

    record = int8.manifest.get("repairs")
    if not record:
        return loaded.model
    names = tuple(step["name"] for step in record["applied"])
    remade, again = with_repairs(loaded, names, loaded.calibration(), progress)
    if again["repaired_sha256"] != record["repaired_sha256"]:
        raise InputError(
            f"{int8.path} was repaired ({', '.join(names)}) into a model this run cannot remake "
            "(another calibration set or model); re-export it with the same --calib, or without --repair."
        )
    return remade.model


def run_diagnose(req: Any, progress: Progress | None = None) -> DiagnoseResult:
    """The `diagnose` command: fp32 and int8 artifacts of each backend (reused or exported), the
    per-layer comparison on N inputs, written to OUT/<model>/diagnose.json."""
    from resnet_deploy.calibration.dataset import from_spec
    from resnet_deploy.inputs.contract import data_source
    from resnet_deploy.exporting.pipeline import ensure_artifact, load
    from resnet_deploy.store.workspace import Workspace

    progress = progress or Progress()
    from resnet_deploy.backend.target import targets_with

    probed = targets_with("probe")
    bad = [t for t in req.targets if t not in probed]
    if bad:
        raise InputError(f"diagnose does not support target {bad[0]!r}; it supports {', '.join(probed)}.")
    loaded, ws = load(req.model, req.options, progress, req.data), Workspace(req.out)
    ds = from_spec(
        data_source(req.data, loaded.ref, "--data"),
        loaded.model.input_shape,
        size=req.n,
        digits_split="test",
        spec=loaded.spec,
        option="--data",
    )
    for note in ds.notes("--n"):
        progress.log(note)
    x, _ = ds.arrays()
    backends: dict[str, dict[str, Any]] = {}
    for t in req.targets:
        f32 = ensure_artifact(ws, loaded, t, "fp32", progress)
        i8 = ensure_artifact(ws, loaded, t, "int8", progress)
        model = reference_model(loaded, i8, progress)
        progress.log(f"diagnosing {t}/int8 layer by layer on {len(x)} samples")
        backends[f"{t}/int8"] = diagnose_backend(model, t, f32, i8.model_file, x, req.sqnr_limit, progress)
    with progress.step("root causes of the damaged layers (Keras, weights and activations apart)"):
        causes = rootcause.table(model, backends, x, req.sqnr_limit, loaded.calibration(), progress)
    result = DiagnoseResult(
        loaded.name,
        int(len(x)),
        req.sqnr_limit,
        ds.describe(),
        [layer.name for layer in layermap.computing_layers(loaded.model)],
        backends,
        causes,
    )
    write_json_atomic(ws.result(loaded.name, "diagnose"), result.to_dict())
    return result
