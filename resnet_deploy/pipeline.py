"""export(model, targets, precision, calib) -> artifacts. One calibration set, made once, feeds
every target's quantizer; each artifact is written atomically; one failing target does not
lose the others' artifacts."""
from __future__ import annotations

import datetime as _dt
import hashlib
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import resnet_deploy
from resnet_deploy.artifact import Artifact
from resnet_deploy.config import ExportConfig
from resnet_deploy.errors import DeployError, ExportError
from resnet_deploy.progress import Progress
from resnet_deploy.target import get_target


@dataclass
class ExportResult:
    """What `export` produced: artifacts per target, and the error of each target that failed."""

    artifacts: list[Artifact] = field(default_factory=list)
    failures: dict[str, DeployError] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failures


def model_fingerprint(model: Any) -> str:
    """sha256 of the Keras model's architecture (JSON) and its weights, in order."""
    h = hashlib.sha256(model.to_json().encode())
    for w in model.get_weights():
        h.update(w.tobytes())
    return h.hexdigest()


def artifact_dir(out_root: Path, model_name: str, target: str, precision: str) -> Path:
    return Path(out_root) / model_name / target / precision


def _publish(staging: Path, final: Path) -> None:
    """Swap the finished staging dir into place; an older artifact is removed only after."""
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{time.time_ns()}")
        final.rename(old)
    staging.rename(final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def export(model_name: str, model: Any, targets: list[str], config: ExportConfig, calib: Any,
           out_root: Path, progress: Progress | None = None) -> ExportResult:
    """Export `model` to every target in `targets`. Returns artifacts and per-target failures.

    Configuration errors (unknown target, unsupported precision) are raised before any work.
    """
    progress = progress or Progress()
    out_root = Path(out_root)
    target_objs = [get_target(t) for t in targets]
    for t in target_objs:
        t.check_config(config)

    common: dict[str, Any] = {
        "model": {"name": model_name, "source_sha256": model_fingerprint(model),
                  "input_shape": list(model.input_shape), "output_shape": list(model.output_shape)},
        "preprocessing": None,
        "calibration": None,
    }
    if calib is not None:
        with progress.step(f"preparing calibration set ({len(calib)} samples)"):
            common["calibration"] = calib.describe()  # loads, preprocesses and hashes once
        common["preprocessing"] = calib.preprocess_dict()

    result = ExportResult()
    for target in target_objs:
        final = artifact_dir(out_root, model_name, target.name, config.precision.value)
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=final.parent))
        t0 = time.perf_counter()
        try:
            with progress.step(f"exporting {model_name} -> {target.name} {config.precision.value}"):
                artifact = target.export(model, staging, config, calib if config.precision.needs_calibration else None,
                                         progress)
            seconds = time.perf_counter() - t0
            artifact.write_manifest({
                **common,
                "tool_versions": {"resnet-deploy": resnet_deploy.__version__, "python": platform.python_version(),
                                  **target.tool_versions()},
                "export": {"utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                           "seconds": round(seconds, 2), "host": platform.machine()},
            })
            _publish(staging, final)
            artifact.path = final
            result.artifacts.append(artifact)
        except DeployError as e:
            shutil.rmtree(staging, ignore_errors=True)
            result.failures[target.name] = e
        except Exception as e:  # noqa: BLE001 - keep the other targets' artifacts; report this one
            shutil.rmtree(staging, ignore_errors=True)
            err = ExportError(f"{target.name} export failed: {type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}")
            err.__cause__ = e
            result.failures[target.name] = err
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return result
