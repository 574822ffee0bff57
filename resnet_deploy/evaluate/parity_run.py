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


def run_parity(req: ParityRequest, progress: Progress | None = None) -> ParityReport:
    """The whole parity run; writes the JSON report. The caller decides what a breach means
    (the CLI exits 5)."""
    from resnet_deploy.backend.target import get_target
    from resnet_deploy.evaluate.tolerances import tolerance_for

    progress = progress or Progress()
    loaded, ref = _reference(req, progress)
    name = loaded.name
    if req.save_reference is not None:
        ref.save(req.save_reference)
        progress.log(f"reference saved to {req.save_reference}")
    ws = Workspace(req.out)
    candidates: list[Candidate] = []
    try:
        for p in req.precisions:
            for t, a in zip(req.targets, ensure_artifacts(ws, loaded, req.targets, p.value, progress)):
                _check_held_out(a, ref)
                runner = get_target(t).runner(a, threads=req.threads)
                runner.activate()
                candidates.append(Candidate(f"{t}/{p.value}", p.value, runner, str(a.path)))
        tolerances = {p.value: tolerance_for(p, req.tolerance_overrides.get(p)) for p in req.precisions}
        report = evaluate(
            name,
            ref,
            candidates,
            tolerances,
            data=ref.meta.get("data"),
            environment=_environment(req.threads),
            progress=progress,
        )
    finally:
        for c in candidates:
            c.runner.deactivate()
    write_json_atomic(req.report_json or ws.parity_json(name), report.to_dict())
    return report


def report_path(req: ParityRequest, report: ParityReport):
    """Where run_parity wrote the report."""
    return req.report_json or Workspace(req.out).parity_json(report.model)
