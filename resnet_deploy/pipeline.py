"""Export: one calibration set, made once, feeds every target's quantizer; each artifact is
built in a staging folder and published atomically; one failing target does not lose the
others' artifacts. `ensure_artifact` is how parity, bench and package get theirs: reuse a
matching one, export a missing one, never replace one (see workspace.py)."""
from __future__ import annotations

import datetime as _dt
import hashlib
import platform
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import resnet_deploy
from resnet_deploy.artifact import Artifact
from resnet_deploy.config import ExportConfig, config_record
from resnet_deploy.errors import DeployError, ExportError, InputError, first_line
from resnet_deploy.fsutil import publish_dir, staging_dir
from resnet_deploy.progress import Progress
from resnet_deploy.requests import ArtifactOptions, ExportRequest
from resnet_deploy.target import get_target
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


def model_fingerprint(model: Any) -> str:
    """sha256 of the Keras model's architecture (JSON) and its weights, in order."""
    h = hashlib.sha256(model.to_json().encode())
    for w in model.get_weights():
        h.update(w.tobytes())
    return h.hexdigest()


def lazy_calibration(options: ArtifactOptions, model: Any) -> Callable[[], Any]:
    """A zero-arg function that builds the CalibrationSet on first call and reuses it after:
    runs that find every artifact already exported never load calibration data."""
    cache: list = []

    def factory() -> Any:
        if not cache:
            from calibration.dataset import from_spec

            cache.append(from_spec(options.value("calib"), model.input_shape, size=options.value("calib_size"),
                                   seed=options.value("seed")))
        return cache[0]

    return factory


def _common_manifest(model_name: str, model: Any, calib: Any, progress: Progress) -> dict:
    common: dict[str, Any] = {
        "model": {"name": model_name, "source_sha256": model_fingerprint(model),
                  "input_shape": list(model.input_shape), "output_shape": list(model.output_shape)},
        "preprocessing": None, "calibration": None}
    if calib is not None:
        if not calib.is_loaded:
            with progress.step(f"preparing calibration set ({len(calib)} samples)"):
                calib.describe()  # loads, preprocesses and hashes once; every target reuses it
        common["calibration"] = calib.describe()
        common["preprocessing"] = calib.preprocess_dict()
    return common


def _export_one(target: Any, model_name: str, model: Any, config: ExportConfig, calib: Any, common: dict,
                ws: Workspace, progress: Progress) -> Artifact:
    final = ws.artifact_dir(model_name, target.name, config.precision.value)
    with staging_dir(final) as staging:
        t0 = time.perf_counter()
        with progress.step(f"exporting {model_name} -> {target.name} {config.precision.value}"):
            artifact = target.export(model, staging, config, calib, progress)
        artifact.write_manifest({
            **common, "config": config_record(config),
            "tool_versions": {"resnet-deploy": resnet_deploy.__version__, "python": platform.python_version(),
                              **target.tool_versions()},
            "export": {"utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                       "seconds": round(time.perf_counter() - t0, 2), "host": platform.machine()}})
        publish_dir(staging, final)
    artifact.path = final
    return artifact


def export_model(model_name: str, model: Any, targets: list[str], config: ExportConfig, calib: Any,
                 ws: Workspace, progress: Progress | None = None) -> ExportResult:
    """Export a loaded model to every target. Configuration errors are raised before any work;
    a target's failure is recorded in the result and the other targets go on."""
    progress = progress or Progress()
    target_objs = [get_target(t) for t in targets]
    for t in target_objs:
        t.check_config(config)
    calib = calib if config.precision.needs_calibration else None
    common = _common_manifest(model_name, model, calib, progress)
    result = ExportResult()
    for target in target_objs:
        try:
            result.artifacts.append(_export_one(target, model_name, model, config, calib, common, ws, progress))
        except DeployError as e:
            result.failures[target.name] = e
        except Exception as e:  # noqa: BLE001 - keep the other targets' artifacts; report this one
            err = ExportError(f"{target.name} export failed: {type(e).__name__}: {first_line(e)}")
            err.__cause__ = e
            result.failures[target.name] = err
    return result


def export(req: ExportRequest, progress: Progress | None = None) -> ExportResult:
    """The `export` command: load the model and the calibration set once, export every target."""
    from calibration.dataset import check_calib_value

    progress = progress or Progress()
    config = req.options.config(req.precision)
    if config.precision.needs_calibration:
        check_calib_value(req.options.value("calib"))  # a missing folder fails now, not after the model loads
    with progress.step(f"loading model {req.model.name}"):
        name, model = req.model.load()
    calib = lazy_calibration(req.options, model)() if config.precision.needs_calibration else None
    return export_model(name, model, list(req.targets), config, calib, Workspace(req.out), progress)


def _check_reusable(a: Artifact, target: str, model: Any, source_sha: str, options: ArtifactOptions,
                    calib_factory: Callable[[], Any]) -> None:
    fp = calib_factory().fingerprint if (model is not None and options.calibration_given
                                         and a.precision.needs_calibration) else None
    given = options.given_config() if model is not None else {}
    diff = conflicts(a, get_target(target).options, given, source_sha, fp)
    if diff:
        raise InputError(f"{str(a.path)!r} was exported with {'; '.join(diff)}. It is not replaced behind your back: "
                         f"pass the options it was made with, replace it with `export --target {target} --precision "
                         f"{a.precision.value} ...`, or use another --out.")


def ensure_artifact(ws: Workspace, model_name: str, model: Any, target: str, precision: str, source_sha: str,
                    options: ArtifactOptions, calib_factory: Callable[[], Any], progress: Progress) -> Artifact:
    """The artifact under ws if it is intact and matches; else export it now (model=None: a
    saved-reference run, which cannot export)."""
    a = ws.find(model_name, target, precision)
    if a is not None:
        _check_reusable(a, target, model, source_sha, options, calib_factory)
        return a
    if model is None:
        raise InputError(f"No {target} {precision} artifact at {str(ws.artifact_dir(model_name, target, precision))!r}; "
                         f"run `export --target {target} --precision {precision}` first (a --reference run does not "
                         "load Keras).")
    config = options.config(precision)
    calib = calib_factory() if config.precision.needs_calibration else None
    res = export_model(model_name, model, [target], config, calib, ws, progress)
    if res.failures:
        raise res.failures[target]
    return res.artifacts[0]
