"""Parity: compare each runner's outputs with the Keras reference on the same inputs.

The harness sees Runners and arrays only; it never imports a backend.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
import time
from typing import Any

import numpy as np

from resnet_deploy.portable import metrics as _core
from resnet_deploy.evaluate.tolerances import Tolerance
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


def _agreement(acc: _core.Accumulator) -> float:
    m = acc.result()
    return float(m["top1_agreement"] if acc.classifier else m["cosine"])


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
    (Runner.serve); metrics are accumulated exactly (portable/metrics.py: Accumulator), so memory
    does not grow with the number of samples.

    reference: .count, .outputs, .meta and .batches() -> (inputs, labels, Keras outputs), in memory
    or streamed (evaluate/reference.py). tolerances: {precision: Tolerance}. Runners must be active.
    """
    progress = progress or Progress()
    names = ["keras", *(c.name for c in candidates)]
    against = {c.name: _core.Accumulator() for c in candidates}
    pairs = {(a, b): _core.Accumulator() for i, a in enumerate(names) for b in names[i + 1 :]}
    seconds = dict.fromkeys(against, 0.0)
    label = f"parity of {len(candidates)} artifact(s) against Keras"
    for x, labels, ref in progress.track(reference.batches(), reference.count, label, weight=lambda b: len(b[0])):
        outputs = {"keras": ref}
        for c in candidates:
            t0 = time.perf_counter()
            outputs[c.name] = c.runner.serve(x)
            seconds[c.name] += time.perf_counter() - t0
            against[c.name].add(ref, outputs[c.name], labels)
        for (a, b), acc in pairs.items():
            acc.add(outputs[a], outputs[b])
    results = []
    for c in candidates:
        m, tol = Metrics(**against[c.name].result()), tolerances[c.precision]
        info = {**c.runner.info(), "images_per_s": round(reference.count / max(seconds[c.name], 1e-9), 2)}
        results.append(
            BackendResult(c.name, c.precision, m, check(m, tol), info, asdict(tol), seconds[c.name], c.artifact)
        )
    matrix = {a: {b: 1.0 if a == b else _agreement(pairs.get((a, b)) or pairs[(b, a)]) for b in names} for a in names}
    metric = "top1_agreement" if _core.is_classifier_output(reference.outputs) else "cosine"
    meta = reference.meta.get("keras", {})
    return ParityReport(model, reference.count, data or {}, meta, results, matrix, metric, environment or {})
