"""Where artifacts and results live under --out, and when an existing artifact may be reused.

    OUT/<model>/<target>/<precision>/   an artifact (model files + manifest.json)
    OUT/<model>/parity.json             the last parity run
    OUT/<model>/bench.json              the last bench run
    OUT/<model>/report/                 the HTML + Markdown report
    OUT/matrix.json                     the last `matrix` run (every model x target x precision)
    OUT/bundles/<model>-<target>-<precision>[.tar.gz]

Only `export` replaces an artifact. Other commands reuse an intact artifact when it matches
what they were asked for, export one when there is none, and stop with one line when the user
asked for something the existing artifact is not: artifacts are never overwritten behind the
user's back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from resnet_deploy.store.artifact import Artifact
from resnet_deploy.config import record_value
from resnet_deploy.portable.constants import MANIFEST


# The results a command writes under OUT/<model>/ (the report reads the first five back).
RESULT_FILES = {
    "parity": "parity.json",
    "bench": "bench.json",
    "throughput": "throughput.json",
    "profile": "profile.json",
    "diagnose": "diagnose.json",
    "gate": "gate.json",
    "gate-record": "gate-record.json",
    "gate-md": "gate.md",
}


class Workspace:
    """The folder tree under one --out root: the one place that knows where each result lives."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def model_dir(self, model: str) -> Path:
        return self.root / model

    def result(self, model: str, kind: str) -> Path:
        """Where the `kind` result (RESULT_FILES) of a model lives."""
        return self.root / model / RESULT_FILES[kind]

    def models_with(self, kinds: tuple[str, ...]) -> list[str]:
        """The models under this root that have any of these results, by name."""
        if not self.root.is_dir():
            return []
        return sorted(
            d.name for d in self.root.iterdir() if d.is_dir() and any((d / RESULT_FILES[k]).is_file() for k in kinds)
        )

    def artifact_dir(self, model: str, target: str, precision: str) -> Path:
        return self.root / model / target / getattr(precision, "value", precision)

    def parity_json(self, model: str) -> Path:
        return self.result(model, "parity")

    def bench_json(self, model: str) -> Path:
        return self.result(model, "bench")

    def throughput_json(self, model: str) -> Path:
        return self.result(model, "throughput")

    def profile_json(self, model: str) -> Path:
        return self.result(model, "profile")

    def report_dir(self, model: str) -> Path:
        return self.root / model / "report"

    def matrix_json(self) -> Path:
        """The last `matrix` run over every model under this root."""
        return self.root / "matrix.json"

    def bundles_dir(self) -> Path:
        return self.root / "bundles"

    def find(self, model: str, target: str, precision: str) -> Artifact | None:
        """The intact artifact at its place, or None if there is none (a changed file raises)."""
        d = self.artifact_dir(model, target, precision)
        if not (d / MANIFEST).exists():
            return None
        a = Artifact.load(d)
        a.verify()
        return a

    def read_result(self, path: Path, kind: str) -> dict | None:
        """A parity.json / bench.json we wrote, checked before it is trusted; None if absent."""
        if not path.is_file():
            return None
        from resnet_deploy.store.schemas import read_checked

        return read_checked(path, kind, f"re-run `{kind}`")


CALIBRATED_KEYS = ("calib_size", "quant.repairs")  # options every target's calibrated artifacts depend on


def conflicts(
    artifact: Artifact,
    target_options: tuple[str, ...],
    given: dict[str, Any],
    source_sha: str | None,
    calib_fingerprint: str | None,
    preprocessing: dict | None = None,
) -> list[str]:
    """What in the artifact differs from what a command asked for, one phrase per difference.

    given: {config_record key: value} for options the user gave; only the keys this target
    reads are compared. calib_fingerprint: compare calibration only when calibration was given.
    preprocessing: the contract now in force; a calibrated artifact must have been calibrated
    under the same one, given or not (otherwise every number about it is meaningless).
    """
    m = artifact.manifest
    out = []
    have_sha = (m.get("model") or {}).get("source_sha256")
    if source_sha is not None and have_sha != source_sha:
        out.append(f"a different model (source sha256 {str(have_sha)[:12]}..., this one {source_sha[:12]}...)")
    record = m.get("config") or {}
    for key, want in given.items():
        if key in target_options or key in CALIBRATED_KEYS and artifact.precision.needs_calibration:
            have = record_value(record, key)
            if have != want:
                out.append(f"{key}={have} (asked: {want})")
    if preprocessing is not None:
        have_pp = {k: v for k, v in (m.get("preprocessing") or {}).items() if k != "why"}
        want_pp = {k: v for k, v in json.loads(json.dumps(preprocessing)).items() if k != "why"}
        if have_pp != want_pp:
            out.append(
                f"preprocessing {have_pp.get('preset') or 'custom'} (now: {want_pp.get('preset') or 'custom'}; "
                "pass --preprocess to match)"
            )
    if calib_fingerprint is not None and artifact.precision.needs_calibration:
        have_fp = (m.get("calibration") or {}).get("fingerprint_sha256")
        if have_fp != calib_fingerprint:
            out.append("another calibration set (fingerprint differs)")
    return out
