"""Export: one calibration set, made once, feeds every target's quantizer; each artifact is
built in a staging folder and published atomically; one failing target does not lose the
others' artifacts. `ensure_artifacts` is how parity, bench and package get theirs: reuse a
matching one, export a missing one, never replace one (see workspace.py)."""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass, field
from typing import Any, cast

from resnet_deploy.exporting import schedule as background

from resnet_deploy.exporting import memory
from resnet_deploy.store.artifact import Artifact
from resnet_deploy.config import ExportConfig, Precision
from resnet_deploy.errors import InputError
from resnet_deploy.exporting.steps import ExportResult, MakeArtifact, Schedule
from resnet_deploy.progress import Progress
from resnet_deploy.models.source import ModelRef
from resnet_deploy.requests import ArtifactOptions, ExportRequest
from resnet_deploy.backend.exchange import KINDS, Exchange
from resnet_deploy.backend.target import get_target
from resnet_deploy.store.workspace import Workspace, conflicts


def _canonical(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _canonical(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical(v, names) for v in value]
    return names.get(value, value) if isinstance(value, str) else value


def model_fingerprint(model: Any) -> str:
    """sha256 of the Keras model's architecture and its weights, in order. Layer names are
    replaced by their position first: Keras numbers auto-named layers per process (input_layer,
    input_layer_1, ...), and the same model built twice must have the same fingerprint."""
    import json

    names = {layer.name: f"layer{i}" for i, layer in enumerate(model.layers)}
    names[model.name] = "model"
    config = _canonical(json.loads(model.to_json()), names)
    h = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
    for w in model.get_weights():
        h.update(w.tobytes())
    return h.hexdigest()


@dataclass
class Loaded:
    """A model as one command resolved it, once: its name and fingerprint, the preprocessing
    contract and why, the options, and the calibration set (built on first use only)."""

    name: str
    model: Any  # None: a saved-reference run, which cannot export
    source_sha: str
    options: ArtifactOptions
    ref: ModelRef | None = None
    spec: Any = None  # resnet_deploy.calibration.preprocess.PreprocessSpec
    why: str = ""
    data: str | None = None  # the command's --data: calibration falls back to it for a user's model
    progress: Progress = field(default_factory=Progress)
    repairs_record: dict | None = None  # what --repair changed in `model` (exporting/repair.py), if anything
    _calib: list = field(default_factory=list)

    @classmethod
    def of(cls, name: str, model: Any, calib: Any = None, options: ArtifactOptions | None = None) -> "Loaded":
        """A Keras model you already have in memory (library use): default preprocessing, and
        `calib` (a CalibrationSet) for int8."""
        from resnet_deploy.inputs.contract import PreprocessOptions, resolve

        spec, why = resolve(PreprocessOptions(), model, name)
        loaded = cls(name, model, model_fingerprint(model), options or ArtifactOptions(), None, spec, why)
        if calib is not None:
            loaded._calib.append(calib)
        return loaded

    def calibration(self) -> Any:
        """The CalibrationSet: --calib, or the model's default data (a user's model must give it)."""
        if not self._calib:
            from resnet_deploy.calibration.dataset import from_spec
            from resnet_deploy.inputs.contract import data_source

            given = self.options.calib
            if given is None and self.ref is not None and self.ref.default_data is None and self.data is not None:
                given = self.data
                self.progress.log(
                    f"calibrating on --data {self.data} (no --calib given); pass --calib to keep "
                    "calibration and evaluation images apart"
                )
            source = data_source(given, self.ref, "--calib")
            self._calib.append(
                from_spec(
                    source,
                    self.model.input_shape,
                    size=self.options.value("calib_size"),
                    seed=self.options.value("seed"),
                    spec=self.spec,
                    option="--calib" if self.options.calib is not None or given is None else "--data",
                )
            )
            for note in self._calib[0].notes("calibration"):
                self.progress.log(note)
        return self._calib[0]

    def preprocessing(self) -> dict | None:
        """The contract as the manifest records it."""
        return None if self.spec is None else {**self.spec.to_dict(), "why": self.why}


def load(ref: ModelRef, options: ArtifactOptions, progress: Progress, data: str | None = None) -> Loaded:
    """Load the model, fingerprint it and resolve its preprocessing contract (printed with its reason).
    data: the command's --data (parity, package), the calibration fallback for a user's model."""
    from resnet_deploy.calibration.dataset import check_calib_value
    from resnet_deploy.inputs.contract import describe, resolve
    from resnet_deploy.models.check import check_model
    from resnet_deploy.models.keras_apps import recognise

    ref.check()  # what can be refused without TensorFlow is refused before it loads
    for value, option in ((options.calib, "--calib"), (data, "--data")):
        if value is not None:
            check_calib_value(value, option)
    with progress.step(f"loading model {ref.name}"):
        name, model = ref.load()
    check_model(model, name)
    trained_with, trained_why = ref.trained_with, None
    if trained_with is None:  # a user's file: is it a keras.applications ResNet?
        found = recognise(model)
        if found is not None:
            trained_with, trained_why = found.preset, found.why(name)
    spec, why = resolve(options.preprocess, model, name, trained_with, trained_why)
    progress.log(f"preprocessing: {describe(spec)}: {why}")
    if not ref.trained:
        progress.log(f"{name} is untrained (random weights): its numbers are for speed only")
    return Loaded(name, model, model_fingerprint(model), options, ref, spec, why, data, progress)


def _common_manifest(loaded: Loaded, calib: Any, progress: Progress) -> dict:
    from resnet_deploy.backend.profiles import resolve

    model = loaded.model
    profile, why = resolve(loaded.options.value("device"))
    common: dict[str, Any] = {
        "model": {
            "name": loaded.name,
            "source_sha256": loaded.source_sha,
            "input_shape": list(model.input_shape),
            "output_shape": list(model.output_shape),
            "trained": loaded.ref.trained if loaded.ref else None,
        },
        "preprocessing": loaded.preprocessing(),
        "calibration": None,
        "device_profile": profile.record(why),
    }
    if calib is not None:
        if not calib.is_loaded:
            with progress.step(f"preparing calibration set ({len(calib)} samples)"):
                calib.describe()  # loads, preprocesses and hashes once; every target reuses it
        common["calibration"] = calib.describe()
    return common


def with_repairs(loaded: Loaded, repairs: tuple[str, ...], calib: Any, progress: Progress) -> tuple[Loaded, dict]:
    """The loaded model with `repairs` applied (exporting/repair.py) for every target of one
    export, and the manifest's record of what they changed. Its name, fingerprint (the user's
    model) and calibration set are the original's."""
    from dataclasses import replace

    from resnet_deploy.exporting.repair import repaired

    model, record = repaired(loaded.model, repairs, calib, progress)
    record["repaired_sha256"] = model_fingerprint(model)
    return replace(loaded, model=model, repairs_record=record), record


def _exchange(order: list[Any], config: ExportConfig, own_make: bool) -> Exchange:
    """This export's exchange, wanting what a later target takes (`order` holds every target of
    the export). When the caller makes each artifact its own way (the accuracy budget keeps
    layers in float per backend), OpenVINO does not take the ONNX model: a converted ONNX model
    would not follow OpenVINO's own float layers."""
    names = [t.name for t in order]
    return Exchange(
        {
            k
            for k in KINDS
            if any(k in t.takes(config, names) for t in order[1:]) and not (own_make and k == "int8_onnx")
        }
    )


def export_model(
    loaded: Loaded,
    targets: list[str],
    config: ExportConfig,
    ws: Workspace,
    progress: Progress | None = None,
    make: MakeArtifact | None = None,
) -> ExportResult:
    """Export a loaded model to every target. Configuration errors are raised before any work;
    a target's failure is recorded in the result and the other targets go on. `make(target,
    staging, progress)` replaces the target's own export (the accuracy budget drives export this
    way); every artifact is mapped, given its manifest and published the same way."""
    progress = progress or Progress()
    target_objs = [get_target(t) for t in targets]
    for t in target_objs:
        t.check_config(config)
    calib = loaded.calibration() if config.precision.needs_calibration else None
    common = _common_manifest(loaded, calib, progress)
    if config.quant.repairs and calib is not None and make is None:  # the budget repairs per attempt
        loaded, common["repairs"] = with_repairs(loaded, config.quant.repairs, calib, progress)
    if config.precision is Precision.BF16:  # the device must compute bf16: checked before it runs there
        common["device_profile"]["bf16"] = True
    order, use_worker = background.plan(target_objs, config) if make is None else (target_objs, False)
    with contextlib.ExitStack() as stack, background.Worker() as worker:  # the worker stops before staging goes
        stack.enter_context(memory.long_lived())  # TF, Keras and the model: out of every collection's way
        schedule = Schedule(
            loaded,
            config,
            calib,
            common,
            ws,
            progress,
            stack,
            worker,
            use_worker,
            [t.name for t in order],
            make,
            _exchange(order, config, make is not None),
        )
        for target in order:
            schedule.run(target)
        schedule.collect()
    schedule.result.artifacts.sort(key=lambda a: targets.index(a.target))
    return schedule.result


def export(req: ExportRequest, progress: Progress | None = None) -> ExportResult:
    """The `export` command: load the model and the calibration set once, export every target
    (with an accuracy budget, `resnet_deploy.export` hands the request to the budget, which
    drives this export)."""
    if req.budget is not None:
        raise InputError("an export within an accuracy budget is the budget's to run: call resnet_deploy.export.")
    progress = progress or Progress()
    loaded, ws = load(req.model, req.options, progress), Workspace(req.out)
    runs = [export_model(loaded, list(req.targets), req.options.config(p), ws, progress) for p in req.precisions]
    if len(runs) == 1:
        return runs[0]
    merged = ExportResult()  # several precisions: the model and calibration set loaded once
    for p, res in zip(req.precisions, runs):
        merged.artifacts += res.artifacts
        merged.failures.update({f"{t}/{p.value}": e for t, e in res.failures.items()})
    return merged


def _check_reusable(a: Artifact, target: str, loaded: Loaded) -> None:
    calibrated = loaded.model is not None and a.precision.needs_calibration
    fp = loaded.calibration().fingerprint if calibrated and loaded.options.calibration_given else None
    given = loaded.options.given_config() if loaded.model is not None else {}
    diff = conflicts(
        a, get_target(target).reads(), given, loaded.source_sha, fp, loaded.preprocessing() if calibrated else None
    )
    if diff:
        raise InputError(
            f"{str(a.path)!r} was exported with {'; '.join(diff)}. It is not replaced behind your back: "
            f"pass the options it was made with, replace it with `export --target {target} --precision "
            f"{a.precision.value} ...`, or use another --out."
        )


def ensure_artifacts(
    ws: Workspace, loaded: Loaded, targets: list[str] | tuple[str, ...], precision: str, progress: Progress
) -> list[Artifact]:
    """Each target's artifact under ws if it is intact and matches; the missing ones exported now,
    together (one calibration set, and what one target's export shares with another's:
    backend/exchange.py), as `export --target` them all would. A saved-reference run, with no
    model, cannot export."""
    found = {t: ws.find(loaded.name, t, precision) for t in targets}
    for t, a in found.items():
        if a is not None:
            _check_reusable(a, t, loaded)
    missing = [t for t, a in found.items() if a is None]
    if missing and loaded.model is None:
        t = missing[0]
        raise InputError(
            f"No {t} {precision} artifact at {str(ws.artifact_dir(loaded.name, t, precision))!r}; "
            f"run `export --target {t} --precision {precision}` first (a --reference run does not "
            "load Keras)."
        )
    if missing:
        res = export_model(loaded, missing, loaded.options.config(precision), ws, progress)
        for t in missing:
            if t in res.failures:
                raise res.failures[t]
        found.update({a.target: a for a in res.artifacts})
    return [cast(Artifact, found[t]) for t in targets]


def ensure_artifact(ws: Workspace, loaded: Loaded, target: str, precision: str, progress: Progress) -> Artifact:
    """ensure_artifacts for one target."""
    return ensure_artifacts(ws, loaded, [target], precision, progress)[0]
