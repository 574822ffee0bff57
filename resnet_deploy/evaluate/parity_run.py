"""The `parity` command: the Keras reference (or a saved one) against every artifact, on the
same inputs in the same order; writes OUT/<model>/parity.json (or --report-json)."""

from __future__ import annotations

from typing import Any

from resnet_deploy.errors import InputError
from resnet_deploy.models.source import ModelRef
from resnet_deploy.store.fsutil import write_json_atomic
from resnet_deploy.evaluate.parity import Candidate, ParityReport, evaluate
from resnet_deploy.exporting.pipeline import Loaded, ensure_artifacts, load
from resnet_deploy.progress import Progress
from resnet_deploy.evaluate.reference import Reference, StreamedReference, stream_reference
from resnet_deploy.requests import ParityRequest
from resnet_deploy.store.workspace import Workspace

RECORDED_VERSIONS = (
    "resnet-deploy",
    "tensorflow-cpu",
    "keras",
    "ai-edge-litert",
    "tflite-runtime",
    "onnxruntime",
    "openvino",
    "nncf",
    "numpy",
)


def _reference(req: ParityRequest, progress: Progress) -> tuple[Loaded, Reference | StreamedReference]:
    """The model as resolved (no model for a saved reference) and the reference."""
    if req.reference_file is not None:
        ref = Reference.load(req.reference_file)
        if req.model is not None and req.model.workspace_name != ref.meta["model"]:
            raise InputError(
                f"--model {req.model.name!r} but the reference file is for {ref.meta['model']!r}; "
                "drop --model or pick the right file."
            )
        return Loaded(ref.meta["model"], None, ref.meta["source_sha256"], req.options), ref
    loaded = load(req.model or ModelRef(), req.options, progress, req.data)
    return loaded, stream_reference(loaded, req.data, req.n, req.threads, progress, req.allow_low_accuracy)


def _check_held_out(artifact: Any, ref: Reference | StreamedReference) -> None:
    """Parity's data must not be the calibration or validation samples an accuracy budget used."""
    prints = (artifact.manifest.get("accuracy_budget") or {}).get("sample_fingerprints")
    if prints:
        from resnet_deploy.inputs.samples import check_disjoint

        check_disjoint(ref.fingerprints, prints, "parity")


def _environment(threads: int | None) -> dict:
    from resnet_deploy.backend.cpu import cpu_info
    from resnet_deploy.versions import versions

    return {"cpu": cpu_info(), "threads": threads, "versions": versions(*RECORDED_VERSIONS)}


def _tolerances(req: ParityRequest, ref: Any) -> dict:
    """Each precision's limits, with the user's overrides, judged as this reference allows (an
    untrained model's top-1 agreement is noise)."""
    from resnet_deploy.evaluate.tolerances import tolerance_for

    trained = ref.meta.get("keras", {}).get("trained") is not False
    return {p.value: tolerance_for(p, req.tolerance_overrides.get(p), trained) for p in req.precisions}


def _artifacts(req: ParityRequest, loaded: Loaded, ws: Workspace, progress: Progress) -> list[tuple[str, Any]]:
    """(candidate name, artifact) for every target and precision asked for, exported if missing."""
    return [
        (f"{t}/{p.value}", a)
        for p in req.precisions
        for t, a in zip(req.targets, ensure_artifacts(ws, loaded, req.targets, p.value, progress))
    ]


def _in_process(req: ParityRequest, progress: Progress) -> tuple[Loaded, Any, ParityReport]:
    loaded, ref = _reference(req, progress)
    pairs = _artifacts(req, loaded, Workspace(req.out), progress)
    return loaded, ref, compare(loaded.name, ref, pairs, _tolerances(req, ref), req.threads, progress)


def compare(
    model: str, ref: Any, pairs: list[tuple[str, Any]], tolerances: dict, threads: int | None, progress: Progress
) -> ParityReport:
    """Every (name, artifact) against the reference in this process, in one pass over the samples."""
    from resnet_deploy.backend.target import get_target

    candidates: list[Candidate] = []
    try:
        for name, a in pairs:
            _check_held_out(a, ref)
            runner = get_target(a.target).runner(a, threads=threads)
            runner.activate()
            candidates.append(Candidate(name, a.precision.value, runner, str(a.path)))
        return evaluate(model, ref, candidates, tolerances, ref.meta.get("data"), _environment(threads), progress)
    finally:
        for c in candidates:
            c.runner.deactivate()


def _sharded(req: ParityRequest, progress: Progress) -> tuple[Loaded, Any, ParityReport]:
    """The same run with the Keras reference and every artifact sharded over a Ray cluster."""
    from resnet_deploy.evaluate.parity import judge
    from resnet_deploy.evaluate.reference import finish_reference, parity_set
    from resnet_deploy.evaluate.shards import connect, run_sharded

    connect(str(req.cluster))  # before any model loads: a wrong address is one line at once
    loaded = load(req.model or ModelRef(), req.options, progress, req.data)
    pairs = _artifacts(req, loaded, Workspace(req.out), progress)
    ds = parity_set(loaded, req.data, req.n)
    for note in ds.notes("--n"):
        progress.log(note)
    job = {
        "model": req.model or ModelRef(),
        "options": req.options,
        "data": req.data,
        "n": req.n,
        "threads": req.threads,
        "candidates": [(name, a.target, a.precision.value, str(a.path)) for name, a in pairs],
    }
    done = run_sharded(job, ds.selection.indices, str(req.cluster), req.shards, progress)
    ref = finish_reference(loaded, ds, done["keras"], req.allow_low_accuracy)
    for _, a in pairs:
        _check_held_out(a, ref)
    candidates = [Candidate(name, a.precision.value, None, str(a.path)) for name, a in pairs]
    data = {**ref.meta["data"], "sharding": done["sharding"]}
    env = _environment(req.threads)
    return loaded, ref, judge(loaded.name, done["tally"], candidates, _tolerances(req, ref), ref, data, env)


def run_parity(req: ParityRequest, progress: Progress | None = None) -> ParityReport:
    """The whole parity run (in this process, or sharded over a Ray cluster); writes the JSON
    report. The caller decides what a breach means (the CLI exits 5)."""
    progress = progress or Progress()
    loaded, ref, report = (_sharded if req.cluster else _in_process)(req, progress)
    if req.save_reference is not None:
        ref.save(req.save_reference)
        progress.log(f"reference saved to {req.save_reference}")
    write_json_atomic(req.report_json or Workspace(req.out).parity_json(loaded.name), report.to_dict())
    return report


def report_path(req: ParityRequest, report: ParityReport):
    """Where run_parity wrote the report."""
    return req.report_json or Workspace(req.out).parity_json(report.model)
