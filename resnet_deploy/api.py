"""The Python API: one function per command, each taking the command's request (or the request's
fields as keywords) and returning what the command computed; errors are raised, never printed
(`resnet_deploy.errors`). `from resnet_deploy import export, parity, ...` reaches these lazily."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from resnet_deploy.evaluate.gate import GateResult
    from resnet_deploy.evaluate.matrix import MatrixRequest, MatrixResult
    from resnet_deploy.evaluate.parity import ParityReport
    from resnet_deploy.exporting.steps import ExportResult
    from resnet_deploy.measure.bench import BenchResult
    from resnet_deploy.quantize.diagnose_run import DiagnoseResult
    from resnet_deploy.reporting.html import ReportResult
    from resnet_deploy.ship.bundle import PackageResult
    from resnet_deploy.ship.deploy import DeployResult
    from resnet_deploy.ship.fleet_result import FleetResult
    from resnet_deploy.progress import Progress
    from resnet_deploy.requests import (
        BenchRequest,
        DeployRequest,
        DiagnoseRequest,
        ExportRequest,
        GateRequest,
        PackageRequest,
        ParityRequest,
        ReportRequest,
    )


def _request(kind: str, request: Any, fields: dict[str, Any], where: str = "requests") -> Any:
    """The request given, or one built from keyword fields (not both); `where`: its module."""
    import importlib

    from resnet_deploy.errors import InputError
    from resnet_deploy.models.source import ModelRef

    if request is not None:
        if fields:
            raise InputError(f"pass a {kind} or its fields as keywords, not both.")
        return request
    if isinstance(fields.get("model"), str):
        fields["model"] = ModelRef(fields["model"])
    return getattr(importlib.import_module(f"resnet_deploy.{where}"), kind)(**fields)


def export(request: ExportRequest | None = None, progress: Progress | None = None, **fields: Any) -> ExportResult:
    """Export a model to one or more targets: `export(targets="onnx", precision="int8")`; with
    `budget=Budget(...)` the accuracy budget drives the export."""
    req = _request("ExportRequest", request, fields)
    if req.budget is not None:
        from resnet_deploy.quantize.budget import export_within

        return export_within(req, progress)
    from resnet_deploy.exporting.pipeline import export as run

    return run(req, progress)


def parity(request: ParityRequest | None = None, progress: Progress | None = None, **fields: Any) -> ParityReport:
    """Compare every artifact with the Keras reference; the report says whether each passed."""
    from resnet_deploy.evaluate.parity_run import run_parity

    return run_parity(_request("ParityRequest", request, fields), progress)


def bench(request: BenchRequest | None = None, progress: Progress | None = None, **fields: Any) -> BenchResult:
    """Latency (or throughput) of Keras and every artifact, one process per measurement."""
    from resnet_deploy.measure.bench import run_bench

    return run_bench(_request("BenchRequest", request, fields), progress)


def diagnose(request: DiagnoseRequest | None = None, progress: Progress | None = None, **fields: Any) -> DiagnoseResult:
    """Where int8 loses accuracy, per Keras layer, on every backend."""
    from resnet_deploy.quantize.diagnose_run import run_diagnose

    return run_diagnose(_request("DiagnoseRequest", request, fields), progress)


def package(request: PackageRequest | None = None, progress: Progress | None = None, **fields: Any) -> PackageResult:
    """Self-testing bundles, one per target, each checked on this machine first (a target that
    breaks a tolerance there is refused: `result.refused`, `result.ok`)."""
    from resnet_deploy.ship.bundle import package as run

    return run(_request("PackageRequest", request, fields), progress)


def deploy(
    request: DeployRequest | None = None, progress: Progress | None = None, **fields: Any
) -> DeployResult | FleetResult:
    """Copy a bundle to a device (a folder, ssh://, or every host of an inventory) and self-test it there."""
    req = _request("DeployRequest", request, fields)
    if req.inventory is not None:
        from resnet_deploy.ship.fleet import deploy_fleet

        return deploy_fleet(req, progress)
    from resnet_deploy.ship.deploy import deploy as run

    return run(req)


def gate(request: GateRequest | None = None, progress: Progress | None = None, **fields: Any) -> GateResult:
    """This run against the last good one; raises RegressionError on a regression."""
    from resnet_deploy.evaluate.gate import run_gate

    return run_gate(_request("GateRequest", request, fields), progress)


def report(request: ReportRequest | None = None, **fields: Any) -> ReportResult:
    """The last results under --out (of `model`, default every model there), as report.md and an
    offline HTML page per model."""
    from resnet_deploy.reporting.html import write_report

    return write_report(_request("ReportRequest", request, fields))


def matrix(request: MatrixRequest | None = None, progress: Progress | None = None, **fields: Any) -> MatrixResult:
    """Models x targets x precisions in one process (each model loaded once): export what is
    missing, parity and latency, one row per cell."""
    from resnet_deploy.evaluate.matrix import run_matrix

    return run_matrix(_request("MatrixRequest", request, fields, "evaluate.matrix"), progress)


def verify(bundle: str, key: str | None = None) -> str:
    """Check every file of a bundle against its manifest and, with `key`, its signature (one line
    on success, saying whether the signature was checked); raises IntegrityError if it fails."""
    from pathlib import Path

    from resnet_deploy.ship.unpack import verify_signed

    return verify_signed(Path(bundle), Path(key) if key is not None else None)
