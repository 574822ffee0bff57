"""Latency per backend with the one protocol, each measurement in a fresh process.

Why a process per (backend, precision, threads): thread pools (TensorFlow's above all) can only
be sized before their first use, and peak RSS is per process, so a shared process would report
the largest runtime's memory for every backend. The worker prints one JSON line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from resnet_deploy.errors import DeployError
from resnet_deploy.measure.latency import Protocol
from resnet_deploy.progress import Progress
from resnet_deploy.requests import BenchRequest
from resnet_deploy.store.record import Record

INPUT_SEED = 1234


@dataclass(frozen=True)
class BenchJob:
    """One measurement: the Keras model (kind="keras") or an exported artifact."""

    kind: str  # "keras" or "artifact"
    threads: int
    batch: int = 1
    artifact: str | None = None
    model: str | None = None
    model_options: dict = field(default_factory=dict)
    protocol: dict = field(default_factory=lambda: asdict(Protocol()))
    mode: str = "latency"  # or "throughput"


def bench_input(shape: tuple[int, ...], batch: int) -> np.ndarray:
    """The same seeded [0, 1) input for every runtime."""
    return np.random.default_rng(INPUT_SEED).random((batch, *shape), dtype=np.float32)


def _open(job: BenchJob) -> tuple[Any, int, str, str, tuple, dict]:
    """The runner for a job and what the row says about it: size in bytes, backend, precision,
    input shape, the accuracy budget's float fallback."""
    if job.kind == "keras":
        from resnet_deploy.models.source import load_model
        from resnet_deploy.backend.runner import set_tf_threads

        set_tf_threads(job.threads)  # before the model build initialises TF
        name, model = load_model(str(job.model), **job.model_options)
        return _keras_opened(model, job.threads)
    from resnet_deploy.store.artifact import Artifact
    from resnet_deploy.backend.target import get_target

    a = Artifact.load(Path(str(job.artifact)))
    a.verify()
    runner = get_target(a.target).runner(a, threads=job.threads)
    size = sum(rec["bytes"] for rec in a.manifest["files"].values())
    return (
        runner,
        size,
        a.target,
        a.precision.value,
        tuple(a.inputs[0].shape[1:]),
        a.manifest.get("accuracy_budget") or {},
    )


def run_job(job: BenchJob) -> dict[str, Any]:
    """Measure in this process (the worker side)."""
    import time

    t0 = time.perf_counter()
    return measure_job(job, _open(job), t0)


def keras_job_in_process(model: Any, threads: int, protocol: dict) -> dict[str, Any]:
    """The Keras baseline's row measured on a model this process already holds (the matrix: the
    model is loaded once), with the same protocol as the worker's."""
    import time

    return measure_job(
        BenchJob("keras", threads, protocol=protocol), _keras_opened(model, threads), time.perf_counter()
    )


def _keras_opened(model: Any, threads: int) -> tuple[Any, int, str, str, tuple, dict]:
    from resnet_deploy.backend.runner import KerasRunner

    size = sum(int(np.prod(w.shape)) * np.dtype(w.dtype).itemsize for w in model.weights)
    return KerasRunner(model, threads=threads), size, "keras", "fp32", tuple(model.input_shape[1:]), {}


def measure_job(job: BenchJob, opened: tuple[Any, int, str, str, tuple, dict], t0: float) -> dict[str, Any]:
    """One row: the opened runner timed with the job's protocol (latency, throughput or profile);
    t0: when opening it began (load_ms)."""
    import time

    from resnet_deploy.measure.latency import measure

    runner, size, backend, precision, shape, fallback = opened
    x = bench_input(shape, job.batch)
    protocol = Protocol(**job.protocol)
    with runner:
        load_ms = (time.perf_counter() - t0) * 1000
        if job.mode == "profile":
            return _profile(runner, x, protocol, backend, precision, job)
        if job.mode == "throughput":
            stats = runner.throughput(x, protocol.warmup_s, protocol.seconds, job.threads)
        else:
            stats = measure(runner, x, protocol).to_dict()
            if job.kind == "artifact":  # what really runs in int8 (issue: ORT int8 slower than it should be)
                from resnet_deploy.measure.profiling import op_counts

                stats["ops"] = op_counts(runner.executed_ops(x))
        info = runner.info()
    return {
        "backend": backend,
        "precision": precision,
        "threads": job.threads,
        "threads_used": info.get("threads"),
        "batch": job.batch,
        "load_ms": load_ms,
        "size_mb": size / 2**20,
        "runtime": info,
        **stats,
        **(
            {"float_fallback": {k: fallback.get(k) for k in ("float_layers", "repairs", "latency")}}
            if fallback.get("float_layers") or fallback.get("repairs")
            else {}
        ),
    }


def _profile(runner: Any, x: np.ndarray, protocol: Protocol, backend: str, precision: str, job: BenchJob) -> dict:
    """Per-op timings (mode "profile"), or why this runtime has none."""
    from resnet_deploy.backend.runner import ProfilingUnsupported

    head = {
        "backend": backend,
        "precision": precision,
        "threads": job.threads,
        "batch": job.batch,
        "artifact": job.artifact,
    }
    try:
        return {**head, "supported": True, "executed": runner.profile(x, protocol.warmup_runs, protocol.runs)}
    except ProfilingUnsupported as e:
        return {**head, "supported": False, "why": str(e)}


def _label(job: BenchJob) -> str:
    where = Path(str(job.artifact))
    return "keras fp32" if job.kind == "keras" else f"{where.parent.name} {where.name}"


def _jobs(req: BenchRequest, artifacts: list, protocol: dict) -> list[BenchJob]:
    """One measurement per batch, thread count and runtime (Keras first when asked)."""
    jobs = []
    for batch in req.batch:
        for n in req.threads:
            if req.keras:
                jobs.append(
                    BenchJob(
                        "keras",
                        n,
                        batch,
                        model=req.model.name,
                        model_options=req.model.options,
                        protocol=protocol,
                        mode=req.mode,
                    )
                )
            jobs += [
                BenchJob("artifact", n, batch, artifact=str(a.path), protocol=protocol, mode=req.mode)
                for a in artifacts
            ]
    return jobs


@dataclass(frozen=True)
class BenchResult(Record):
    """What `bench` measured: one row per runtime x threads x batch (latency or throughput), the
    protocol, the artifacts' sha256 and the machine; `profile` when per-op profiles were asked for."""

    model: str
    trained: bool | None
    mode: str
    batch: int
    batches: list[int]
    protocol: dict[str, Any]
    rows: list[dict[str, Any]]
    artifacts: dict[str, str]
    environment: dict[str, Any]
    profile: dict[str, Any] | None = field(default=None, metadata={"optional": True})

    def row(self, backend: str, precision: str) -> dict[str, Any] | None:
        """The first row measured for this runtime and precision (None if it was not measured)."""
        return next((r for r in self.rows if (r["backend"], r["precision"]) == (backend, precision)), None)


def run_bench(req: BenchRequest, progress: Progress | None = None) -> BenchResult:
    """The `bench` command: find (or export) each artifact, then time Keras and every artifact,
    one process per measurement. Writes OUT/<model>/bench.json and returns what it wrote."""
    from resnet_deploy.backend.cpu import cpu_info
    from resnet_deploy.store.fsutil import write_json_atomic
    from resnet_deploy.exporting.pipeline import ensure_artifacts, load
    from resnet_deploy.versions import versions
    from resnet_deploy.store.workspace import Workspace

    progress = progress or Progress()
    loaded, ws = load(req.model, req.options, progress), Workspace(req.out)
    name = loaded.name
    artifacts = [a for p in req.precisions for a in ensure_artifacts(ws, loaded, req.targets, p.value, progress)]
    protocol = asdict(req.protocol)
    jobs = _jobs(req, artifacts, protocol)
    rows = []
    for i, job in enumerate(jobs, 1):
        with progress.step(
            f"[{i}/{len(jobs)}] {req.mode}: {_label(job)} at {job.threads} thread(s), batch {job.batch}"
        ):
            rows.append(run_in_subprocess(job))
    add_speedups(rows)
    result = BenchResult(
        name,
        req.model.trained,
        req.mode,
        req.batch[0],
        list(req.batch),
        protocol,
        rows,
        {str(a.path): a.manifest["files"][a.files[0]]["sha256"] for a in artifacts},
        {
            "cpu": cpu_info(),
            "versions": versions(
                "resnet-deploy", "tensorflow-cpu", "keras", "ai-edge-litert", "onnxruntime", "openvino"
            ),
        },
    )
    path = ws.throughput_json(name) if req.mode == "throughput" else ws.bench_json(name)
    write_json_atomic(path, result.to_dict())
    if not req.profile:
        return result
    from resnet_deploy.measure.profiling import keras_units

    profile = profile_artifacts(
        name, artifacts, req.threads[0], req.batch[0], protocol, progress, keras_units(loaded.model)
    )
    write_json_atomic(ws.profile_json(name), profile)
    return replace(result, profile=profile)


def profile_artifacts(
    name: str,
    artifacts: list,
    threads: int,
    batch: int,
    protocol: dict,
    progress: Any,
    units: dict[str, str] | None = None,
) -> dict:
    """`bench --profile`: each artifact's per-op profile in a fresh process (as bench times it),
    mapped to Keras layers with the artifact's own layer map."""
    from resnet_deploy.backend.cpu import cpu_info
    from resnet_deploy.measure.profiling import by_layer

    backends: dict[str, dict] = {}
    for i, a in enumerate(artifacts, 1):
        label = f"{a.target}/{a.precision.value}"
        with progress.step(f"[{i}/{len(artifacts)}] per-op profile of {label} at {threads} thread(s), batch {batch}"):
            got = run_in_subprocess(
                BenchJob("artifact", threads, batch, artifact=str(a.path), protocol=protocol, mode="profile")
            )
        layer_map = a.manifest.get("layer_map") or {}
        if got["supported"] and "layers" not in layer_map:
            got = {"supported": False, "why": f"the artifact has no layer map ({layer_map.get('error', 'none')})"}
        backends[label] = (
            by_layer(got["executed"], a.target, a.model_file, layer_map, units)
            if got["supported"]
            else {"supported": False, "why": got["why"]}
        )
    return {
        "model": name,
        "threads": threads,
        "batch": batch,
        "runs": protocol["runs"],
        "backends": backends,
        "environment": {"cpu": cpu_info()},
    }


def run_in_subprocess(job: BenchJob, timeout: float = 900) -> dict[str, Any]:
    """Measure in a fresh interpreter; raise a DeployError with the worker's last words on failure."""
    env = {**os.environ, "OMP_NUM_THREADS": str(job.threads)}
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "resnet_deploy.measure.bench", json.dumps(asdict(job))],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
    except subprocess.TimeoutExpired:
        raise DeployError(f"benchmark of {job.artifact or job.model} did not finish within {timeout:.0f} s.") from None
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1].removeprefix("error: ")
        err = DeployError(f"benchmark of {job.artifact or job.model} at {job.threads} threads failed: {tail[:300]}")
        err.exit_code = proc.returncode if 1 < proc.returncode < 10 else DeployError.exit_code  # the worker's own code
        raise err
    return json.loads(proc.stdout.strip().splitlines()[-1])


def add_speedups(rows: list[dict[str, Any]]) -> None:
    """speedup = this throughput / Keras fp32 throughput, at the same threads and batch (in latency
    mode: Keras p50 / this p50, the same ratio of means' medians)."""
    base = {(r["threads"], r["batch"]): r for r in rows if r["backend"] == "keras"}
    for r in rows:
        b = base.get((r["threads"], r["batch"]))
        r["speedup_vs_keras"] = (
            None if b is None else (b["p50"] / r["p50"] if "requests" not in r else r["throughput"] / b["throughput"])
        )


def _worker_main() -> None:
    from resnet_deploy._tf import captured_output

    job = BenchJob(**json.loads(sys.argv[1]))
    try:
        if job.kind == "keras":
            from resnet_deploy._tf import quiet_tf

            quiet_tf()
        with captured_output():
            result = run_job(job)
    except DeployError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    _worker_main()
