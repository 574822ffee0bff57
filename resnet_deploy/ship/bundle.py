"""`package`: self-testing bundles, one per target.

A bundle is a directory (and a .tar.gz of it) holding the artifact, reference inputs with the
Keras outputs on them, the tolerances, the host's parity and latency results, a manifest with
the sha256 of every file, selftest.py and rd_portable/ (the numpy-only core it runs), so the
device needs only Python, numpy and the runtime. An artifact that breaks its tolerance on the
host is not packaged. Deploying bundles is deploy.py.
"""

from __future__ import annotations

import datetime as _dt
import shutil
import tarfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from resnet_deploy import portable
from resnet_deploy.store.artifact import Artifact
from resnet_deploy.errors import ParityError
from resnet_deploy.store.fsutil import publish_dir, staging_dir, write_json_atomic, write_text_atomic
from resnet_deploy.portable import constants as C
from resnet_deploy.progress import Progress
from resnet_deploy.evaluate.reference import Reference
from resnet_deploy.requests import PackageRequest
from resnet_deploy.store.record import Record
from resnet_deploy.store.workspace import Workspace

SELFTEST_SOURCE = Path(__file__).with_name(C.SELFTEST)
PORTABLE_SOURCE = Path(portable.__file__).parent
HOST_LATENCY_KEYS = ("p50", "p90", "p99", "mean", "std", "runs", "first_ms", "load_ms", "peak_rss_mb")


def bundle_name(model: str, target: str, precision: str) -> str:
    """The bundle's folder name: only safe characters (it becomes a folder on devices, reached
    over scp and Ansible), whatever the model file was called."""
    from resnet_deploy.portable.names import safe_name

    return safe_name(f"{model}-{target}-{precision}")


def _host_check(a: Artifact, ref: Reference, req: PackageRequest, tol: Any, progress: Progress) -> dict:
    """Parity and latency of the artifact on this host; refuses an artifact that breaks its tolerance."""
    from resnet_deploy.measure.bench import BenchJob, run_in_subprocess
    from resnet_deploy.backend.cpu import cpu_info
    from resnet_deploy.evaluate.parity import Candidate, evaluate
    from resnet_deploy.backend.target import get_target

    name = f"{a.target}/{a.precision.value}"
    with get_target(a.target).runner(a, threads=req.threads) as r:
        report = evaluate(
            ref.meta["model"],
            ref,
            [Candidate(name, a.precision.value, r, str(a.path))],
            {a.precision.value: tol},
            progress=progress,
        )
    res = report.results[0]
    if res.breaches:
        raise ParityError(
            f"{name} breaks its tolerance on the host ({'; '.join(map(str, res.breaches))}); "
            "not packaging an artifact that fails parity."
        )
    with progress.step(f"timing {name} on the host"):
        lat = run_in_subprocess(BenchJob("artifact", req.threads, 1, artifact=str(a.path)))
    return {
        "threads": req.threads,
        "cpu": cpu_info(),
        "runtime": res.info,
        "parity": res.metrics.to_dict(),
        "latency": {k: lat[k] for k in HOST_LATENCY_KEYS},
    }


def _copy_payload(a: Artifact, ref: Reference, bundle: Path) -> list[str]:
    """The artifact, the reference, selftest.py and rd_portable/ into `bundle`; their names."""
    for f in a.files:
        shutil.copy2(a.path / f, bundle / f)
    np.savez_compressed(bundle / C.REFERENCE, **ref.arrays())  # type: ignore[arg-type]  # numpy stubs read **arrays as allow_pickle
    shutil.copy2(SELFTEST_SOURCE, bundle / C.SELFTEST)
    (bundle / C.PORTABLE_DIR).mkdir()
    portable_files = sorted(p.name for p in PORTABLE_SOURCE.glob("*.py"))
    for f in portable_files:
        shutil.copy2(PORTABLE_SOURCE / f, bundle / C.PORTABLE_DIR / f)
    return [*a.files, C.REFERENCE, C.SELFTEST, *(f"{C.PORTABLE_DIR}/{f}" for f in portable_files)]


def _write_manifest(
    bundle: Path, a: Artifact, files: list[str], ref: Reference, tol: Any, host: dict, preprocessing: dict | None
) -> dict:
    from resnet_deploy.store.artifact import sha256_file

    m = {k: v for k, v in a.manifest.items() if k != "files"}
    manifest = {
        **m,
        "preprocessing": preprocessing,
        "schema_version": C.SCHEMA_VERSION,
        "bundle": bundle.name,
        "model_file": a.files[0],
        "files": {f: {"sha256": sha256_file(bundle / f), "bytes": (bundle / f).stat().st_size} for f in files},
        "tolerance": asdict(tol),
        "reference": {"samples": int(len(ref.x)), "data": ref.meta["data"], "keras": ref.meta["keras"]},
        "host": host,
        "packaged_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    write_json_atomic(bundle / C.MANIFEST, manifest)
    write_text_atomic(bundle / C.MANIFEST_SUM, f"{sha256_file(bundle / C.MANIFEST)}  {C.MANIFEST}\n")
    return manifest


def _write_bundle(
    a: Artifact,
    ref: Reference,
    tol: Any,
    host: dict,
    out_dir: Path,
    preprocessing: dict | None,
    sign_key: Path | None = None,
) -> Packaged:
    """Build the bundle and its tarball in staging, then publish both."""
    name = bundle_name(ref.meta["model"], a.target, a.precision.value)
    final_dir, final_tar = out_dir / name, out_dir / f"{name}.tar.gz"
    with staging_dir(final_dir) as staging:
        bundle = staging / name
        bundle.mkdir()
        files = _copy_payload(a, ref, bundle)
        manifest = _write_manifest(bundle, a, files, ref, tol, host, preprocessing)
        if sign_key is not None:
            from resnet_deploy.ship.signing import sign_bundle

            sign_bundle(bundle, sign_key)  # over every file, the manifests included; then the tarball
        with tarfile.open(staging / f"{name}.tar.gz", "w:gz") as tar:
            tar.add(bundle, arcname=name)
        (staging / f"{name}.tar.gz").replace(final_tar)
        publish_dir(bundle, final_dir)
    return Packaged(
        a.target,
        a.precision.value,
        str(final_dir),
        str(final_tar),
        final_tar.stat().st_size,
        manifest["host"],
        sign_key is not None,
    )


@dataclass(frozen=True)
class Packaged(Record):
    """One bundle written: where, its tarball's size, the host's parity and latency, signed or not."""

    target: str
    precision: str
    bundle: str
    tarball: str
    bytes: int
    host: dict[str, Any]
    signed: bool


@dataclass(frozen=True)
class Refused(Record):
    """One target not packaged, and why (its artifact broke a tolerance on the host)."""

    target: str
    precision: str
    why: str


@dataclass(frozen=True)
class PackageResult(Record):
    """Every target's outcome: the bundles written and the targets refused."""

    packaged: list[Packaged]
    refused: list[Refused]

    @property
    def ok(self) -> bool:
        return not self.refused


def outcome_lines(result: PackageResult) -> str:
    """One line per target: packaged (tarball, size, host p50 and accuracy) or refused and why."""
    lines = []
    for b in result.packaged:
        acc = b.host["parity"].get("accuracy")
        lines.append(
            f"packaged {b.target}/{b.precision}: {b.tarball}  {b.bytes / 1024:.0f} KiB  "
            f"host p50 {b.host['latency']['p50']:.2f} ms" + (f"  accuracy {acc * 100:.2f}%" if acc is not None else "")
        )
    lines += [f"refused  {r.target}/{r.precision}: {r.why}" for r in result.refused]
    return "\n".join(lines)


def package(req: PackageRequest, progress: Progress | None = None) -> PackageResult:
    """Export (or reuse) each artifact, check it on the host, and write its bundle + tarball; an
    artifact that breaks a tolerance on the host is refused (the others are still packaged)."""
    from resnet_deploy.exporting.pipeline import ensure_artifacts, load
    from resnet_deploy.evaluate.reference import make_reference
    from resnet_deploy.evaluate.tolerances import tolerance_for

    progress = progress or Progress()
    if req.sign_key is not None:
        from resnet_deploy.ship.signing import check_key

        check_key(req.sign_key, private=True)  # before any work
    # a bad override fails here, before any work
    tol = tolerance_for(req.precision, req.tolerance_overrides.get(req.precision), req.model.trained)
    loaded = load(req.model, req.options, progress, req.data)
    ref = make_reference(loaded, req.data, req.n, req.threads, progress, req.allow_low_accuracy)
    ws = Workspace(req.out)
    made: list[Packaged] = []
    refused: list[Refused] = []
    for a in ensure_artifacts(ws, loaded, req.targets, req.precision.value, progress):
        try:
            host = _host_check(a, ref, req, tol, progress)
        except ParityError as e:
            refused.append(Refused(a.target, a.precision.value, str(e)))
            continue
        made.append(_write_bundle(a, ref, tol, host, ws.bundles_dir(), loaded.preprocessing(), req.sign_key))
    return PackageResult(made, refused)
