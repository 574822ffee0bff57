"""One export_model call's targets, in the schedule's order (exporting/schedule.py): each staged, begun,
its Tail run here or in the worker, mapped, given its manifest and published whole; a target's
failure recorded and the others going on."""

from __future__ import annotations

import contextlib
import datetime as _dt
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import resnet_deploy
from resnet_deploy.store.artifact import Artifact
from resnet_deploy.exporting.schedule import WORKER_NICE, WORKER_THREADS, beside
from resnet_deploy.config import ExportConfig, config_record
from resnet_deploy.errors import DeployError, ExportError, first_line
from resnet_deploy.store.fsutil import publish_dir, staging_dir
from resnet_deploy.exporting.memory import release
from resnet_deploy.progress import Progress
from resnet_deploy.backend.exchange import Exchange
from resnet_deploy.backend.target import Tail
from resnet_deploy.store.workspace import Workspace

if TYPE_CHECKING:
    from resnet_deploy.exporting.schedule import Worker


# (target, staging folder, progress) -> the target's Artifact written into the staging folder
MakeArtifact = Callable[[Any, Path, Progress], Artifact]


@dataclass
class ExportResult:
    """What `export` produced: artifacts per target, and the error of each target that failed."""

    artifacts: list[Artifact] = field(default_factory=list)
    failures: dict[str, DeployError] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict:
        rows = [
            {
                "target": a.target,
                "precision": a.precision.value,
                "path": str(a.model_file),
                "bytes": a.manifest["files"][a.files[0]]["bytes"],
                "sha256": a.manifest["files"][a.files[0]]["sha256"],
                "seconds": a.manifest["export"]["seconds"],
            }
            for a in self.artifacts
        ]
        return {"artifacts": rows, "failures": {k: str(v) for k, v in self.failures.items()}}


@dataclass
class Started:
    """A target whose export has begun: its staging folder, and its Artifact or the Tail still to run."""

    target: Any
    final: Path
    staging: Path
    t0: float
    done: Any  # Artifact, or Tail (target.py)


def guard(result: ExportResult, name: str, fn: Callable[[], Any]) -> Any:
    """fn(), or None with its error recorded as this target's failure (the other targets go on);
    the filesystem saying no (not writable, full) is raised: no target can succeed."""
    try:
        return fn()
    except DeployError as e:
        result.failures[name] = e
    except OSError as e:
        if e.filename is not None:
            raise  # the CLI says which file and why
        result.failures[name] = ExportError(f"{name} export failed: {first_line(e)}")
    except Exception as e:  # noqa: BLE001 - keep the other targets' artifacts; report this one
        err = ExportError(f"{name} export failed: {type(e).__name__}: {first_line(e)}")
        err.__cause__ = e
        result.failures[name] = err
    finally:
        release()  # the next target's peak must not land on this one's garbage
    return None


def layer_map(
    loaded: Any, target: str, artifact: Artifact, config: ExportConfig, calib: Any, keras_out: Any = None
) -> dict | None:
    """Keras layer -> tensor of this artifact (layermap.py), on one calibration sample or, without
    calibration, one seeded [0, 1) input. keras_out: KerasOnce, shared by one export's maps."""
    import numpy as np

    from resnet_deploy.exporting import layermap
    from resnet_deploy.config import Precision

    if calib is not None:
        x = next(calib.batches(1))[0]
    else:
        x = np.random.default_rng(0).random((1, *loaded.model.input_shape[1:]), dtype=np.float32)
    return layermap.for_artifact(
        loaded.model, target, artifact.model_file, x, config.precision is Precision.FP32, keras_out
    )


class KerasOnce:
    """keras_activations(model, x) computed once for the layer maps of one export (they all probe
    the same input; ResNet-50 @224: 0.9 s per map), held (~100 MB there) until drop()."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.drop()

    def drop(self) -> None:
        self._x: Any = None
        self._out: Any = None

    def __call__(self, x: Any) -> dict:
        import numpy as np

        from resnet_deploy.exporting.layermap import keras_activations

        if self._out is None or self._x.shape != x.shape or not np.array_equal(self._x, x):
            self._x, self._out = np.array(x, copy=True), keras_activations(self.model, x)
        return self._out


@dataclass
class Schedule:
    """The targets of one export, run in order by `run(target, fallback)`; a Tail goes to the
    worker when `use_worker`, and is collected before a target that may not run beside it."""

    loaded: Any  # pipeline.Loaded
    config: ExportConfig
    calib: Any
    common: dict
    ws: Workspace
    progress: Progress
    stack: contextlib.ExitStack
    worker: "Worker"
    use_worker: bool
    names: list[str] = field(default_factory=list)  # every target of this export
    make: MakeArtifact | None = None  # the caller's way to make each artifact (export_model says)
    exchange: Exchange | None = None  # what this export's targets hand each other (backend/exchange.py)
    result: ExportResult = field(default_factory=ExportResult)
    waiting: Started | None = None

    def __post_init__(self) -> None:
        self.keras_out = KerasOnce(self.loaded.model)

    def run(self, target: Any) -> None:
        """Begin `target`: its Tail goes to the worker, or its artifact is finished here."""
        if self.waiting is not None and not beside(target, self.config, self.names):
            self.collect()
        if not target.light:
            self.keras_out.drop()  # its peak must not carry the maps' Keras activations
        s = guard(self.result, target.name, lambda: self._begin(target))
        if s is not None and isinstance(s.done, Tail):
            self.progress.log(
                f"{target.name} {self.config.precision.value}: {s.done.label} goes on in a worker "
                "process, beside the next target"
            )
            self.worker.start(s.done, target.name, self.config.precision.value, s.staging)
            self.waiting = s
        elif s is not None:
            guard(self.result, target.name, lambda: self.result.artifacts.append(self._finish(s)))

    def collect(self) -> None:
        """Wait for the worker's tail, then map, write and publish its artifact."""
        s, self.waiting = self.waiting, None
        if s is None:
            return

        def wait_and_finish() -> None:
            with self.progress.step(f"waiting for {s.target.name} {self.config.precision.value}: {s.done.label}"):
                tail_result = self.worker.result()
            self.result.artifacts.append(self._finish(s, tail_result))

        guard(self.result, s.target.name, wait_and_finish)

    def _begin(self, target: Any) -> Started:
        loaded, config, progress = self.loaded, self.config, self.progress
        final = self.ws.artifact_dir(loaded.name, target.name, config.precision.value)
        staging = self.stack.enter_context(staging_dir(final))
        t0 = time.perf_counter()
        if self.make is not None:
            return Started(target, final, staging, t0, self.make(target, staging, progress))
        with progress.step(f"exporting {loaded.name} -> {target.name} {config.precision.value}"):
            done = target.begin(loaded.model, staging, config, self.calib, progress, self.exchange)
            if isinstance(done, Tail) and not self.use_worker:
                release()  # the converter's garbage (tf2onnx: ~1.1 GB on ResNet-50) goes before the tail's peak
                done = done.finish(target.run_tail(done, staging, config, progress))
        return Started(target, final, staging, t0, done)

    def _finish(self, s: Started, tail_result: dict | None = None) -> Artifact:
        """The artifact (its Tail's result put in), its layer map and manifest, published whole."""
        config = self.config
        artifact = s.done.finish(tail_result or {}) if isinstance(s.done, Tail) else s.done
        with self.progress.step(f"mapping Keras layers to {s.target.name} {config.precision.value} tensors"):
            artifact.details["layer_map"] = layer_map(
                self.loaded, s.target.name, artifact, config, self.calib, self.keras_out
            )
        record = {
            "utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "seconds": round(time.perf_counter() - s.t0, 2),
            "host": platform.machine(),
        }
        if isinstance(s.done, Tail):
            record["worker_process"] = (
                f"{s.done.label}, beside the next target, on {WORKER_THREADS} thread at nice "
                f"{WORKER_NICE} (exporting/schedule.py says why)"
            )
        artifact.write_manifest(
            {
                **self.common,
                "config": config_record(config),
                "tool_versions": {
                    "resnet-deploy": resnet_deploy.__version__,
                    "python": platform.python_version(),
                    **s.target.tool_versions(),
                },
                "export": record,
            }
        )
        publish_dir(s.staging, s.final)
        artifact.path = s.final
        return artifact
