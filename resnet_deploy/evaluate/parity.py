"""Parity: compare each runner's outputs with the Keras reference on the same inputs.

The harness sees Runners and arrays only; it never imports a backend.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from resnet_deploy.portable import metrics as _core
from resnet_deploy.evaluate.tolerances import Tolerance
from resnet_deploy.evaluate.tally import Tally
from resnet_deploy.progress import Progress


@dataclass(frozen=True)
class Metrics:
    """How far one output is from the reference. Classifier fields are None for feature maps."""

    max_abs: float
    mean_abs: float
    max_abs_rel: float
    cosine: float
    sqnr_db: float
    top1_agreement: float | None = None
    top5_overlap: float | None = None
    accuracy: float | None = None
    ref_accuracy: float | None = None

    @property
    def acc_drop(self) -> float | None:
        """Accuracy drop in percentage points (positive = worse than the reference)."""
        return _core.acc_drop(asdict(self))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "acc_drop": self.acc_drop}


def compare(ref: np.ndarray, out: np.ndarray, labels: np.ndarray | None = None) -> Metrics:
    """Metrics of `out` against `ref` (same shape, sample-major). Computed in float64 by the
    numpy-only core that bundles carry to devices (resnet_deploy/portable/metrics.py)."""
    return Metrics(**_core.compare(ref, out, labels))


@dataclass(frozen=True)
class Breach:
    """One metric outside its tolerance."""

    metric: str
    value: float
    limit: float
    kind: str  # "max" (value must be <= limit) or "min" (value must be >= limit)

    def __str__(self) -> str:
        return _core.breach_text(asdict(self))


def check(m: Metrics, tol: Tolerance) -> list[Breach]:
    """Every tolerance the metrics break (empty list: parity holds)."""
    return [Breach(**b) for b in _core.check(asdict(m), asdict(tol))]


# --------------------------------------------------------------------------------------------
# The harness: reference outputs + candidate runners -> ParityReport. Runners and arrays only.
# --------------------------------------------------------------------------------------------


@dataclass
class Candidate:
    """One backend to judge: a display name, the precision it claims, and its runner."""

    name: str
    precision: str
    runner: Any  # resnet_deploy.backend.runner.Runner; typed loosely so no backend is imported here
    artifact: str | None = None


@dataclass
class BackendResult:
    name: str
    precision: str
    metrics: Metrics
    breaches: list[Breach]
    info: dict
    tolerance: dict
    seconds: float
    artifact: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "precision": self.precision,
            "artifact": self.artifact,
            "ok": not self.breaches,
            "metrics": self.metrics.to_dict(),
            "breaches": [asdict(b) for b in self.breaches],
            "tolerance": self.tolerance,
            "runtime": self.info,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class ParityReport:
    """The result of one parity run: per-backend metrics, breaches and the agreement matrix."""

    model: str
    samples: int
    data: dict
    reference: dict
    results: list[BackendResult]
    agreement: dict[str, dict[str, float]]
    agreement_metric: str
    environment: dict

    @property
    def ok(self) -> bool:
        return all(not r.breaches for r in self.results)

    def breach_lines(self) -> list[str]:
        return [f"{r.name} ({r.precision}): {b}" for r in self.results for b in r.breaches]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ParityReport":
        """Read back what to_dict() wrote (parity.json)."""
        results = [
            BackendResult(
                r["name"],
                r["precision"],
                Metrics(**{k: v for k, v in r["metrics"].items() if k != "acc_drop"}),
                [Breach(**b) for b in r["breaches"]],
                r["runtime"],
                r["tolerance"],
                r["seconds"],
                r["artifact"],
            )
            for r in d["results"]
        ]
        return cls(
            d["model"],
            d["samples"],
            d["data"],
            d["reference"],
            results,
            d["agreement"]["matrix"],
            d["agreement"]["metric"],
            d["environment"],
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "samples": self.samples,
            "ok": self.ok,
            "data": self.data,
            "reference": self.reference,
            "results": [r.to_dict() for r in self.results],
            "agreement": {"metric": self.agreement_metric, "matrix": self.agreement},
            "environment": self.environment,
        }


def evaluate(
    model: str,
    reference: Any,
    candidates: list[Candidate],
    tolerances: dict[str, Any],
    data: dict | None = None,
    environment: dict | None = None,
    progress: Any = None,
) -> ParityReport:
    """Run every candidate on the same inputs, batch by batch in the same order, and judge it
    against the reference's Keras outputs. Each runner serves the batch as it would in production
    (Runner.serve); metrics are accumulated exactly (tally.py), so memory does not grow with the
    number of samples.

    reference: .count, .outputs, .meta and .batches() -> (inputs, labels, Keras outputs), in memory
    or streamed (evaluate/reference.py). tolerances: {precision: Tolerance}. Runners must be active.
    """
    tally = Tally.of([c.name for c in candidates]).run(reference, candidates, progress or Progress())
    return judge(model, tally, candidates, tolerances, reference, data, environment)


def judge(
    model: str,
    tally: Tally,
    candidates: list[Candidate],
    tolerances: dict[str, Any],
    reference: Any,
    data: dict | None = None,
    environment: dict | None = None,
) -> ParityReport:
    """The report of a finished tally: each candidate's metrics against its precision's tolerance."""
    results = []
    for c in candidates:
        m, tol = Metrics(**tally.against[c.name].result()), tolerances[c.precision]
        seconds = tally.seconds[c.name]
        info = {**tally.info.get(c.name, {}), "images_per_s": round(tally.count / max(seconds, 1e-9), 2)}
        results.append(BackendResult(c.name, c.precision, m, check(m, tol), info, asdict(tol), seconds, c.artifact))
    matrix = {a: {b: tally.agreement(a, b) for b in tally.names} for a in tally.names}
    metric = "top1_agreement" if _core.is_classifier_output(reference.outputs) else "cosine"
    meta = reference.meta.get("keras", {})
    return ParityReport(model, tally.count, data or {}, meta, results, matrix, metric, environment or {})


def verdict(res: dict) -> str:
    """A parity result's verdict: pass, or FAIL with every breach."""
    if res["ok"]:
        return "pass"
    from resnet_deploy.portable import metrics

    return "FAIL: " + "; ".join(metrics.breach_text(b) for b in res["breaches"])


def ran_in(precision: str, runtime: dict) -> str:
    """What the runtime computed in: an int8 model's float ops run in the runtime's float precision."""
    hint = runtime.get("inference_precision")
    if precision == "int8" and hint:
        return f"int8 (float ops {hint})"
    return str(hint or runtime.get("precision") or precision)
