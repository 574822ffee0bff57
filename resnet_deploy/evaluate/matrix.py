"""The `matrix` command: models x targets x precisions in one process, each model loaded once.

Per model: its artifacts (reused when they match, exported when missing; a target that cannot be
exported is a row saying why, the others go on), one Keras reference, parity of every artifact in
one pass over the samples, and latency with bench's protocol (each artifact in its own process, as
`bench` times it; the Keras baseline on the model already loaded). It writes each model's
parity.json and bench.json (so `report` shows them) and OUT/matrix.json, and returns one row per
model x target x precision.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from resnet_deploy.config import Precision
from resnet_deploy.errors import DeployError
from resnet_deploy.measure.latency import Protocol
from resnet_deploy.progress import Progress
from resnet_deploy.requests import ALL, DEFAULT_OUT, ArtifactOptions, _precisions, _targets
from resnet_deploy.store.record import Record
from resnet_deploy.values import positive_int, thread_count, writable


@dataclass(frozen=True)
class MatrixRequest:
    """`matrix`: every model x target x precision; model options apply to the models that take them."""

    models: tuple[str, ...] = ("digits",)
    targets: tuple[str, ...] = ALL
    precisions: tuple[Precision, ...] = (Precision.FP32, Precision.INT8)
    data: str | None = None  # None: each model's default (contract.data_source)
    n: int | None = None  # None: every sample of the data (synthetic: calibration.dataset.SYNTHETIC_COUNT)
    threads: int = 2
    protocol: Protocol = field(default_factory=Protocol)
    options: ArtifactOptions = field(default_factory=ArtifactOptions)
    out: Path = DEFAULT_OUT
    model_options: dict = field(default_factory=dict)  # input_size / classes / width, for the models taking them
    allow_low_accuracy: bool = False

    def __post_init__(self) -> None:
        models = self.models.split(",") if isinstance(self.models, str) else self.models
        object.__setattr__(self, "models", tuple(m.strip() for m in models if m.strip()))
        if not self.models:
            from resnet_deploy.errors import InputError

            raise InputError("No model given; pass --models digits,resnet18 (built-ins or files).")
        object.__setattr__(self, "targets", _targets(self.targets))
        object.__setattr__(self, "precisions", _precisions(self.precisions))
        if self.n is not None:
            object.__setattr__(self, "n", positive_int(self.n, "--n"))
        object.__setattr__(self, "threads", thread_count(self.threads))
        object.__setattr__(self, "out", writable(self.out, "--out", folder=True))
        for m in self.models:
            model_ref(m, self.model_options)  # every model's options checked before any work


def model_ref(name: str, given: dict[str, Any]) -> Any:
    """The ModelRef for one model of the matrix: the size options only where the model takes them."""
    from resnet_deploy.models.source import BUILTIN_MODELS, ModelRef, check_source

    spec = BUILTIN_MODELS.get(name)
    takes = spec.options if spec is not None else ()
    kw = {k: v for k, v in given.items() if k in takes and v is not None}
    check_source(name, None, False, kw)
    return ModelRef(name, **kw)


@dataclass(frozen=True)
class MatrixRow(Record):
    """One model x target x precision: verdict and the numbers of the summary table."""

    model: str
    target: str
    precision: str
    verdict: str  # "pass", "FAIL: <breaches>" or "not exported: <why>"
    accuracy: float | None = None
    keras_accuracy: float | None = None
    top1_agreement: float | None = None
    p50_ms: float | None = None
    speedup: float | None = None
    size_mb: float | None = None
    ran_in: str | None = None

    @property
    def ok(self) -> bool:
        return self.verdict == "pass"


@dataclass(frozen=True)
class MatrixResult(Record):
    """Every row; per model the samples, the Keras p50 the speed-ups are over, and the machine."""

    rows: list[MatrixRow]
    models: dict[str, dict[str, Any]]
    protocol: dict[str, Any]
    environment: dict[str, Any]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows)


def run_matrix(req: MatrixRequest, progress: Progress | None = None) -> MatrixResult:
    """The whole matrix; writes each model's parity.json and bench.json and OUT/matrix.json."""
    from resnet_deploy.backend.cpu import cpu_info
    from resnet_deploy.backend.runner import set_tf_threads
    from resnet_deploy.store.fsutil import write_json_atomic
    from resnet_deploy.store.workspace import Workspace

    progress = progress or Progress()
    set_tf_threads(req.threads)  # before the first model initialises TensorFlow: Keras runs at --threads
    rows: list[MatrixRow] = []
    models: dict[str, dict[str, Any]] = {}
    for i, name in enumerate(req.models, 1):
        progress.log(f"[{i}/{len(req.models)}] model {name}")
        model_rows, facts = _one_model(req, model_ref(name, req.model_options), progress)
        rows += model_rows
        models[model_rows[0].model if model_rows else name] = facts
    result = MatrixResult(rows, models, asdict(req.protocol), {"cpu": cpu_info()})
    write_json_atomic(Workspace(req.out).matrix_json(), result.to_dict())
    return result


def _one_model(req: MatrixRequest, ref: Any, progress: Progress) -> tuple[list[MatrixRow], dict[str, Any]]:
    """One model's rows: artifacts, parity in one pass, latency; its parity.json and bench.json."""
    from resnet_deploy.evaluate.parity_run import compare
    from resnet_deploy.evaluate.reference import stream_reference
    from resnet_deploy.evaluate.tolerances import tolerance_for
    from resnet_deploy.exporting.pipeline import ensure_artifact, load
    from resnet_deploy.store.fsutil import write_json_atomic
    from resnet_deploy.store.workspace import Workspace

    loaded, ws = load(ref, req.options, progress, req.data), Workspace(req.out)
    reference = stream_reference(loaded, req.data, req.n, req.threads, progress, req.allow_low_accuracy)
    pairs, missing = [], {}
    for p in req.precisions:
        for t in req.targets:
            try:
                pairs.append((f"{t}/{p.value}", ensure_artifact(ws, loaded, t, p.value, progress)))
            except DeployError as e:  # this cell cannot be made; the others go on
                missing[(t, p.value)] = str(e)
    trained = reference.meta.get("keras", {}).get("trained") is not False
    tolerances = {p.value: tolerance_for(p, None, trained) for p in req.precisions}
    report = compare(loaded.name, reference, pairs, tolerances, req.threads, progress)
    write_json_atomic(ws.parity_json(loaded.name), report.to_dict())
    bench = _latency(req, loaded, [a for _, a in pairs], progress)
    write_json_atomic(ws.bench_json(loaded.name), bench.to_dict())
    rows = _rows(loaded.name, req, report, bench, missing)
    keras = bench.row("keras", "fp32") or {}
    return rows, {"samples": report.samples, "trained": trained, "keras_p50_ms": keras.get("p50")}


def _latency(req: MatrixRequest, loaded: Any, artifacts: list[Any], progress: Progress) -> Any:
    """bench's latency rows: every artifact in its own process, Keras on the model loaded here."""
    from resnet_deploy.backend.cpu import cpu_info
    from resnet_deploy.measure.bench import BenchJob, BenchResult, add_speedups, keras_job_in_process, run_in_subprocess
    from resnet_deploy.versions import versions

    protocol = asdict(req.protocol)
    with progress.step(f"timing keras fp32 at {req.threads} thread(s)"):
        rows = [keras_job_in_process(loaded.model, req.threads, protocol)]
    for i, a in enumerate(artifacts, 1):
        with progress.step(f"[{i}/{len(artifacts)}] timing {a.target}/{a.precision.value} at {req.threads} thread(s)"):
            rows.append(
                run_in_subprocess(BenchJob("artifact", req.threads, 1, artifact=str(a.path), protocol=protocol))
            )
    add_speedups(rows)
    sums = {str(a.path): a.manifest["files"][a.files[0]]["sha256"] for a in artifacts}
    env = {
        "cpu": cpu_info(),
        "versions": versions("resnet-deploy", "tensorflow-cpu", "keras", "onnxruntime", "openvino"),
    }
    return BenchResult(loaded.name, loaded.ref.trained, "latency", 1, [1], protocol, rows, sums, env)


def _rows(model: str, req: MatrixRequest, report: Any, bench: Any, missing: dict) -> list[MatrixRow]:
    """The table's rows in target x precision order, from the parity report and the latency rows."""
    from resnet_deploy.evaluate.parity import ran_in, verdict

    by_name = {r.name: r.to_dict() for r in report.results}
    rows = []
    for p in req.precisions:
        for t in req.targets:
            if (t, p.value) in missing:
                rows.append(MatrixRow(model, t, p.value, f"not exported: {missing[(t, p.value)]}"))
                continue
            res, lat = by_name[f"{t}/{p.value}"], bench.row(t, p.value) or {}
            m = res["metrics"]
            rows.append(
                MatrixRow(
                    model,
                    t,
                    p.value,
                    verdict(res),
                    m.get("accuracy"),
                    m.get("ref_accuracy"),
                    m.get("top1_agreement"),
                    lat.get("p50"),
                    lat.get("speedup_vs_keras"),
                    lat.get("size_mb"),
                    ran_in(p.value, res.get("runtime") or {}),
                )
            )
    return rows
