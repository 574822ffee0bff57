"""export(model, targets, precision, calib) -> artifacts. One calibration set, made once, feeds
every target's quantizer; each artifact is written atomically; one failing target does not
lose the others' artifacts."""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
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


def config_record(config: ExportConfig) -> dict:
    """The export options as recorded in the manifest (and compared before an artifact is reused)."""
    from dataclasses import asdict

    return json.loads(json.dumps(asdict(config), default=lambda v: getattr(v, "value", str(v))))


def _options(record: dict | None) -> dict | None:
    """A config record without calib_size: the calibration fingerprint already covers the data."""
    return None if record is None else {k: v for k, v in record.items() if k != "calib_size"}


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
        if not calib.is_loaded:
            with progress.step(f"preparing calibration set ({len(calib)} samples)"):
                calib.describe()  # loads, preprocesses and hashes once; every target reuses it
        common["calibration"] = calib.describe()
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
                "config": config_record(config),
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


# --------------------------------------------------------------------------------------------
# Parity: reference (Keras, or a saved reference file) vs every artifact, on the same inputs.
# --------------------------------------------------------------------------------------------

REFERENCE_FORMAT = 1


@dataclass
class Reference:
    """Inputs, labels and the Keras outputs on them, plus what produced them."""

    x: Any
    labels: Any
    outputs: Any
    meta: dict

    def save(self, path: Path) -> None:
        """Atomic .npz: x, labels (if any), outputs, meta (JSON)."""
        import json
        import os

        import numpy as np

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".npz", dir=path.parent)
        os.close(fd)
        try:
            arrays = {"x": self.x, "outputs": self.outputs, "meta": np.array(json.dumps(self.meta))}
            if self.labels is not None:
                arrays["labels"] = self.labels
            np.savez_compressed(tmp, **arrays)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: Path) -> "Reference":
        import json

        import numpy as np

        from resnet_deploy.errors import InputError

        path = Path(path)
        if not path.is_file():
            raise InputError(f"Reference file {str(path)!r} does not exist; create one with `parity --save-reference FILE.npz`.")
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                ref = cls(z["x"], z["labels"] if "labels" in z.files else None, z["outputs"], meta)
        except Exception as e:  # noqa: BLE001 - corrupt user file
            raise InputError(f"Reference file {str(path)!r} is not a resnet-deploy reference ({e}); re-create it with --save-reference.") from e
        if meta.get("format") != REFERENCE_FORMAT or len(ref.x) != len(ref.outputs):
            raise InputError(f"Reference file {str(path)!r} has an unknown format or mismatched arrays; re-create it with --save-reference.")
        return ref


def make_reference(model_name: str, model: Any, data: str, n: int, threads: int | None,
                   progress: Progress) -> Reference:
    """Preprocess the parity inputs (digits: the held-out test split) and run Keras on them."""
    from calibration.dataset import from_spec
    from resnet_deploy.runner import KerasRunner

    ds = from_spec(data, model.input_shape, size=n, digits_split="test")
    with progress.step(f"loading {len(ds)} parity inputs"):
        x, labels = ds.arrays()
    with progress.step(f"running the Keras reference on {len(x)} samples"):
        with KerasRunner(model, threads=threads) as r:
            outputs = r.predict(x)
            info = r.info()
    meta = {"format": REFERENCE_FORMAT, "model": model_name, "source_sha256": model_fingerprint(model),
            "data": ds.describe(), "keras": info}
    return Reference(x, labels, outputs, meta)


def lazy_calibration(calib: str, model: Any, size: int) -> Any:
    """A zero-arg function that builds the CalibrationSet on first call and reuses it after:
    runs that find every artifact already exported never load calibration data."""
    cache: list = []

    def factory() -> Any:
        if not cache:
            from calibration.dataset import from_spec

            cache.append(from_spec(calib, model.input_shape, size=size))
        return cache[0]

    return factory


def find_or_export(model_name: str, model: Any, target: str, precision: str, out_root: Path, source_sha: str,
                   calib_factory: Any, progress: Progress) -> Artifact:
    """The artifact under out_root if it is intact and from this model; else export it now."""
    from resnet_deploy.errors import InputError

    d = artifact_dir(out_root, model_name, target, precision)
    config = ExportConfig(precision=precision)
    if (d / "manifest.json").exists():
        a = Artifact.load(d)
        a.verify()
        if model is None:
            if a.manifest.get("model", {}).get("source_sha256") != source_sha:
                raise InputError(f"{str(d)!r} was exported from a different {model_name!r} model than the reference; "
                                 "re-export it or re-create the reference.")
            return a
        same = (a.manifest.get("model", {}).get("source_sha256") == source_sha
                and _options(a.manifest.get("config")) == _options(config_record(config))
                and (not config.precision.needs_calibration
                     or (a.manifest.get("calibration") or {}).get("fingerprint_sha256") == calib_factory().fingerprint))
        if same:
            return a
        progress.log(f"{str(d)} is from another model, options or calibration set: exporting it again")
    elif model is None:
        raise InputError(f"No {target} {precision} artifact at {str(d)!r}; run `export --target {target} "
                         f"--precision {precision}` first (a --reference run does not load Keras).")
    calib = calib_factory() if config.precision.needs_calibration else None
    res = export(model_name, model, [target], config, calib, out_root, progress)
    if res.failures:
        raise res.failures[target]
    return res.artifacts[0]


def run_parity(model_ref: str | None, targets: list[str], precisions: list[str], data: str, n: int,
               out_root: Path, threads: int | None = None, calib: str = "digits", calib_size: int = 200,
               reference_file: Path | None = None, save_reference: Path | None = None,
               tolerance_overrides: dict | None = None, progress: Progress | None = None,
               model_options: dict | None = None):
    """The whole parity run. Returns a ParityReport; the caller decides what a breach means."""
    from resnet_deploy.config import Precision
    from resnet_deploy.cpu import cpu_info
    from resnet_deploy.errors import InputError
    from resnet_deploy.parity import Candidate, evaluate
    from resnet_deploy.tolerances import tolerance_for
    from resnet_deploy.versions import versions

    progress = progress or Progress()
    precs = [Precision.parse(p).value for p in precisions]
    for t in targets:
        for p in precs:
            get_target(t).check_config(ExportConfig(precision=p))
    model = None
    if reference_file is not None:
        ref = Reference.load(reference_file)
        if model_ref and model_ref != ref.meta["model"]:
            raise InputError(f"--model {model_ref!r} but the reference file is for {ref.meta['model']!r}; drop --model or pick the right file.")
        model_name = ref.meta["model"]
    else:
        from resnet_deploy.models import load_model

        with progress.step(f"loading model {model_ref or 'digits'}"):
            model_name, model = load_model(model_ref or "digits", **(model_options or {}))
        ref = make_reference(model_name, model, data, n, threads, progress)
    if save_reference is not None:
        ref.save(save_reference)
        progress.log(f"reference saved to {save_reference}")

    calib_factory = lazy_calibration(calib, model, calib_size)

    candidates: list[Candidate] = []
    try:
        for p in precs:
            for t in targets:
                a = find_or_export(model_name, model, t, p, out_root, ref.meta["source_sha256"], calib_factory, progress)
                runner = get_target(t).runner(a, threads=threads)
                runner.activate()
                candidates.append(Candidate(f"{t}/{p}", p, runner, str(a.path)))
        tolerances = {p: tolerance_for(p, (tolerance_overrides or {}).get(Precision.parse(p))) for p in precs}
        env = {"cpu": cpu_info(), "threads": threads,
               "versions": versions("resnet-deploy", "tensorflow-cpu", "keras", "ai-edge-litert", "tflite-runtime",
                                    "onnxruntime", "openvino", "nncf", "numpy")}
        return evaluate(model_name, ref.x, ref.labels, ref.outputs, ref.meta.get("keras", {}), candidates, tolerances,
                        data=ref.meta.get("data"), environment=env, progress=progress)
    finally:
        for c in candidates:
            c.runner.deactivate()


def run_bench(model_ref: str, targets: list[str], precisions: list[str], threads: list[int], batch: int,
              out_root: Path, keras: bool = True, protocol: Any = None, calib: str = "synthetic",
              calib_size: int = 64, model_options: dict | None = None,
              progress: Progress | None = None) -> dict[str, Any]:
    """Find or export each artifact, then time Keras and every artifact, one process per measurement."""
    from dataclasses import asdict

    from resnet_deploy.bench import BenchJob, add_speedups, run_in_subprocess
    from resnet_deploy.config import Precision
    from resnet_deploy.cpu import cpu_info
    from resnet_deploy.errors import InputError
    from resnet_deploy.latency import Protocol
    from resnet_deploy.models import load_model
    from resnet_deploy.versions import versions

    progress = progress or Progress()
    protocol = protocol or Protocol()
    if batch < 1 or not threads or min(threads) < 1:
        raise InputError(f"--batch {batch} and --threads {threads} must be >= 1.")
    precs = [Precision.parse(p).value for p in precisions]
    for t in targets:
        for p in precs:
            get_target(t).check_config(ExportConfig(precision=p))
    model_options = {k: v for k, v in (model_options or {}).items() if v is not None}
    with progress.step(f"loading model {model_ref}"):
        model_name, model = load_model(model_ref, **model_options)
    sha = model_fingerprint(model)
    calib_factory = lazy_calibration(calib, model, calib_size)

    artifacts = [find_or_export(model_name, model, t, p, out_root, sha, calib_factory, progress)
                 for p in precs for t in targets]
    jobs = []
    for n in threads:
        if keras:
            jobs.append(BenchJob("keras", n, batch, model=model_ref, model_options=model_options, protocol=asdict(protocol)))
        jobs += [BenchJob("artifact", n, batch, artifact=str(a.path), protocol=asdict(protocol)) for a in artifacts]
    rows = []
    for i, job in enumerate(jobs, 1):
        label = "keras fp32" if job.kind == "keras" else f"{Path(job.artifact).parent.name} {Path(job.artifact).name}"
        with progress.step(f"[{i}/{len(jobs)}] timing {label} at {job.threads} thread(s), batch {batch}"):
            rows.append(run_in_subprocess(job))
    add_speedups(rows)
    result = {"model": model_name, "batch": batch, "protocol": asdict(protocol), "rows": rows,
              "environment": {"cpu": cpu_info(), "versions": versions("resnet-deploy", "tensorflow-cpu", "keras",
                                                                      "ai-edge-litert", "onnxruntime", "openvino")}}
    from resnet_deploy.artifact import write_json_atomic

    (Path(out_root) / model_name).mkdir(parents=True, exist_ok=True)
    write_json_atomic(Path(out_root) / model_name / "bench.json", result)
    return result
