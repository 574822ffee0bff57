"""Export: one calibration set, made once, feeds every target's quantizer; each artifact is
built in a staging folder and published atomically; one failing target does not lose the
others' artifacts. `ensure_artifact` is how parity, bench and package get theirs: reuse a
matching one, export a missing one, never replace one (see workspace.py)."""
from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import resnet_deploy
from resnet_deploy import background
from resnet_deploy.artifact import Artifact
from resnet_deploy.config import ExportConfig, config_record
from resnet_deploy.errors import DeployError, ExportError, InputError, first_line
from resnet_deploy.fsutil import publish_dir, staging_dir
from resnet_deploy.memory import release
from resnet_deploy.progress import Progress
from resnet_deploy.models import ModelRef
from resnet_deploy.requests import ArtifactOptions, ExportRequest
from resnet_deploy.target import Tail, get_target
from resnet_deploy.workspace import Workspace, conflicts


@dataclass
class ExportResult:
    """What `export` produced: artifacts per target, and the error of each target that failed."""

    artifacts: list[Artifact] = field(default_factory=list)
    failures: dict[str, DeployError] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict:
        rows = [{"target": a.target, "precision": a.precision.value, "path": str(a.model_file),
                 "bytes": a.manifest["files"][a.files[0]]["bytes"], "sha256": a.manifest["files"][a.files[0]]["sha256"],
                 "seconds": a.manifest["export"]["seconds"]} for a in self.artifacts]
        return {"artifacts": rows, "failures": {k: str(v) for k, v in self.failures.items()}}


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
    spec: Any = None  # calibration.preprocess.PreprocessSpec
    why: str = ""
    data: str | None = None  # the command's --data: calibration falls back to it for a user's model
    progress: Progress = field(default_factory=Progress)
    _calib: list = field(default_factory=list)

    @classmethod
    def of(cls, name: str, model: Any, calib: Any = None, options: ArtifactOptions | None = None) -> "Loaded":
        """A Keras model you already have in memory (library use): default preprocessing, and
        `calib` (a CalibrationSet) for int8."""
        from resnet_deploy.contract import PreprocessOptions, resolve

        spec, why = resolve(PreprocessOptions(), model, name)
        loaded = cls(name, model, model_fingerprint(model), options or ArtifactOptions(), None, spec, why)
        if calib is not None:
            loaded._calib.append(calib)
        return loaded

    def calibration(self) -> Any:
        """The CalibrationSet: --calib, or the model's default data (a user's model must give it)."""
        if not self._calib:
            from calibration.dataset import from_spec
            from resnet_deploy.contract import data_source

            given = self.options.calib
            if given is None and self.ref is not None and self.ref.default_data is None and self.data is not None:
                given = self.data
                self.progress.log(f"calibrating on --data {self.data} (no --calib given); pass --calib to keep "
                                  "calibration and evaluation images apart")
            source = data_source(given, self.ref, "--calib")
            self._calib.append(from_spec(source, self.model.input_shape, size=self.options.value("calib_size"),
                                         seed=self.options.value("seed"), spec=self.spec))
            note = self._calib[0].shortfall("calibration")
            if note:
                self.progress.log(note)
        return self._calib[0]

    def preprocessing(self) -> dict | None:
        """The contract as the manifest records it."""
        return None if self.spec is None else {**self.spec.to_dict(), "why": self.why}


def load(ref: ModelRef, options: ArtifactOptions, progress: Progress, data: str | None = None) -> Loaded:
    """Load the model, fingerprint it and resolve its preprocessing contract (printed with its reason).
    data: the command's --data (parity, package), the calibration fallback for a user's model."""
    from resnet_deploy.contract import describe, resolve

    from resnet_deploy.modelcheck import check_model

    with progress.step(f"loading model {ref.name}"):
        name, model = ref.load()
    check_model(model, name)
    spec, why = resolve(options.preprocess, model, name, ref.trained_with)
    progress.log(f"preprocessing: {describe(spec)}: {why}")
    if not ref.trained:
        progress.log(f"{name} is untrained (random weights): its numbers are for speed only")
    return Loaded(name, model, model_fingerprint(model), options, ref, spec, why, data, progress)


def _common_manifest(loaded: Loaded, calib: Any, progress: Progress) -> dict:
    from resnet_deploy.profiles import resolve

    model = loaded.model
    profile, why = resolve(loaded.options.value("device"))
    common: dict[str, Any] = {
        "model": {"name": loaded.name, "source_sha256": loaded.source_sha, "input_shape": list(model.input_shape),
                  "output_shape": list(model.output_shape), "trained": loaded.ref.trained if loaded.ref else None},
        "preprocessing": loaded.preprocessing(), "calibration": None, "device_profile": profile.record(why)}
    if calib is not None:
        if not calib.is_loaded:
            with progress.step(f"preparing calibration set ({len(calib)} samples)"):
                calib.describe()  # loads, preprocesses and hashes once; every target reuses it
        common["calibration"] = calib.describe()
    return common


@dataclass
class _Started:
    """A target whose export has begun: its staging folder, and its Artifact or the Tail still to run."""

    target: Any
    final: Path
    staging: Path
    t0: float
    done: Any  # Artifact, or Tail (target.py)


def _begin_one(target: Any, loaded: Loaded, config: ExportConfig, calib: Any, ws: Workspace, progress: Progress,
               stack: contextlib.ExitStack, fallback: tuple | None, inline: bool) -> _Started:
    """Stage and begin one target's export; `fallback` = (Budget, Validation, fp32 artifact)
    exports int8 within an accuracy budget (budget.py); `inline` runs a Tail here, at once."""
    final = ws.artifact_dir(loaded.name, target.name, config.precision.value)
    staging = stack.enter_context(staging_dir(final))
    t0 = time.perf_counter()
    if fallback is not None:
        from resnet_deploy import budget

        return _Started(target, final, staging, t0, budget.search(target, loaded, config, calib, *fallback, staging,
                                                                  progress))
    with progress.step(f"exporting {loaded.name} -> {target.name} {config.precision.value}"):
        done = target.begin(loaded.model, staging, config, calib, progress)
        if isinstance(done, Tail) and inline:
            done = done.finish(target.run_tail(done, staging, config, progress))
    return _Started(target, final, staging, t0, done)


def _finish_one(s: _Started, loaded: Loaded, config: ExportConfig, calib: Any, common: dict, progress: Progress,
                tail_result: dict | None = None) -> Artifact:
    """The artifact (its Tail's result put in), its layer map and manifest, published whole."""
    artifact = s.done.finish(tail_result) if isinstance(s.done, Tail) else s.done
    with progress.step(f"mapping Keras layers to {s.target.name} {config.precision.value} tensors"):
        artifact.details["layer_map"] = _layer_map(loaded, s.target.name, artifact, config, calib)
    record = {"utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
              "seconds": round(time.perf_counter() - s.t0, 2), "host": platform.machine()}
    if isinstance(s.done, Tail):
        record["worker_process"] = f"{s.done.label}, beside the next target (background.py says why)"
    artifact.write_manifest({
        **common, "config": config_record(config),
        "tool_versions": {"resnet-deploy": resnet_deploy.__version__, "python": platform.python_version(),
                          **s.target.tool_versions()},
        "export": record})
    publish_dir(s.staging, s.final)
    artifact.path = s.final
    return artifact


def _guard(result: "ExportResult", name: str, fn: Callable[[], Any]) -> Any:
    """fn(), or None with its error recorded as this target's failure (the other targets go on);
    the filesystem saying no (not writable, full) is raised: no target can succeed."""
    try:
        return fn()
    except DeployError as e:
        result.failures[name] = e
    except OSError as e:
        if e.filename is not None:
            raise
        result.failures[name] = ExportError(f"{name} export failed: {first_line(e)}")
    except Exception as e:  # noqa: BLE001 - keep the other targets' artifacts; report this one
        err = ExportError(f"{name} export failed: {type(e).__name__}: {first_line(e)}")
        err.__cause__ = e
        result.failures[name] = err
    finally:
        release()  # the next target's peak must not land on this one's garbage
    return None


def _layer_map(loaded: Loaded, target: str, artifact: Artifact, config: ExportConfig, calib: Any) -> dict | None:
    """Keras layer -> tensor of this artifact (layermap.py), on one calibration sample or, without
    calibration, one seeded [0, 1) input."""
    import numpy as np

    from resnet_deploy import layermap
    from resnet_deploy.config import Precision

    if calib is not None:
        x = calib.arrays()[0][:1]
    else:
        x = np.random.default_rng(0).random((1, *loaded.model.input_shape[1:]), dtype=np.float32)
    return layermap.for_artifact(loaded.model, target, artifact.model_file, x, config.precision is Precision.FP32)


def export_model(loaded: Loaded, targets: list[str], config: ExportConfig, ws: Workspace,
                 progress: Progress | None = None, budget: Any = None) -> ExportResult:
    """Export a loaded model to every target. Configuration errors are raised before any work;
    a target's failure is recorded in the result and the other targets go on. With a `budget`
    (budget.Budget), int8 is exported within it on validation data checked once, up front."""
    progress = progress or Progress()
    target_objs = [get_target(t) for t in targets]
    for t in target_objs:
        t.check_config(config)
    calib = loaded.calibration() if config.precision.needs_calibration else None
    common = _common_manifest(loaded, calib, progress)
    val = None
    if budget is not None:
        from resnet_deploy.budget import load_validation

        val = load_validation(budget, loaded, calib, progress)
    order, use_worker = background.plan(target_objs, config) if val is None else (target_objs, False)
    result = ExportResult()
    with contextlib.ExitStack() as stack, background.Worker() as worker:  # the worker stops before staging goes
        waiting: _Started | None = None

        def collect() -> None:  # the tail in the worker: wait, then map, write and publish its artifact
            s, label = waiting, waiting.done.label
            with progress.step(f"waiting for {s.target.name} {config.precision.value}: {label}"):
                tail_result = worker.result()
            result.artifacts.append(_finish_one(s, loaded, config, calib, common, progress, tail_result))

        for target in order:
            if waiting is not None and (not target.light or target.has_tail(config)):
                _guard(result, waiting.target.name, collect)
                waiting = None
            fallback = (lambda t=target: None if val is None else (budget, val, ensure_artifact(
                ws, loaded, t.name, "fp32", progress)))
            s = _guard(result, target.name, lambda t=target: _begin_one(
                t, loaded, config, calib, ws, progress, stack, fallback(), not use_worker))
            if s is not None and isinstance(s.done, Tail):
                progress.log(f"{target.name} {config.precision.value}: {s.done.label} goes on in a worker process, "
                             "beside the next target")
                worker.start(s.done, target.name, config.precision.value, s.staging)
                waiting = s
            elif s is not None:
                _guard(result, target.name, lambda s=s: result.artifacts.append(
                    _finish_one(s, loaded, config, calib, common, progress)))
        if waiting is not None:
            _guard(result, waiting.target.name, collect)
    result.artifacts.sort(key=lambda a: targets.index(a.target))
    return result


def export(req: ExportRequest, progress: Progress | None = None) -> ExportResult:
    """The `export` command: load the model and the calibration set once, export every target."""
    from calibration.dataset import check_calib_value

    progress = progress or Progress()
    config = req.options.config(req.precision)
    if config.precision.needs_calibration and req.options.calib is not None:
        check_calib_value(req.options.calib)  # a missing folder fails now, not after the model loads
    if req.budget is not None:
        check_calib_value(req.budget.val)
    return export_model(load(req.model, req.options, progress), list(req.targets), config, Workspace(req.out), progress,
                        req.budget)


def _check_reusable(a: Artifact, target: str, loaded: Loaded) -> None:
    calibrated = loaded.model is not None and a.precision.needs_calibration
    fp = loaded.calibration().fingerprint if calibrated and loaded.options.calibration_given else None
    given = loaded.options.given_config() if loaded.model is not None else {}
    diff = conflicts(a, get_target(target).options, given, loaded.source_sha, fp,
                     loaded.preprocessing() if calibrated else None)
    if diff:
        raise InputError(f"{str(a.path)!r} was exported with {'; '.join(diff)}. It is not replaced behind your back: "
                         f"pass the options it was made with, replace it with `export --target {target} --precision "
                         f"{a.precision.value} ...`, or use another --out.")


def ensure_artifact(ws: Workspace, loaded: Loaded, target: str, precision: str, progress: Progress) -> Artifact:
    """The artifact under ws if it is intact and matches; else export it now (a saved-reference
    run, with no model, cannot export)."""
    a = ws.find(loaded.name, target, precision)
    if a is not None:
        _check_reusable(a, target, loaded)
        return a
    if loaded.model is None:
        raise InputError(f"No {target} {precision} artifact at {str(ws.artifact_dir(loaded.name, target, precision))!r}; "
                         f"run `export --target {target} --precision {precision}` first (a --reference run does not "
                         "load Keras).")
    res = export_model(loaded, [target], loaded.options.config(precision), ws, progress)
    if res.failures:
        raise res.failures[target]
    return res.artifacts[0]
