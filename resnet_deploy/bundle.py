"""Bundles that self-test on the device, and deploying them to a folder or over SSH.

A bundle is a directory (and a .tar.gz of it) holding the artifact, reference inputs with the
Keras outputs on them, the tolerances, the host's parity and latency results, a manifest with
the sha256 of every file, and selftest.py, which needs only Python, numpy and the runtime.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from resnet_deploy import selftest as core
from resnet_deploy.artifact import sha256_file, write_json_atomic
from resnet_deploy.errors import DeployError, InputError, IntegrityError, ParityError
from resnet_deploy.progress import Progress

SELFTEST_SOURCE = Path(core.__file__).with_suffix(".py")


def bundle_name(model: str, target: str, precision: str) -> str:
    return f"{model}-{target}-{precision}"


# ---------------------------------------------------------------------------------------------
# package
# ---------------------------------------------------------------------------------------------


def package(model_ref: str, targets: list[str], precision: str, data: str, n: int, out_root: Path,
            threads: int = 2, calib: str = "digits", calib_size: int = 200, model_options: dict | None = None,
            progress: Progress | None = None) -> list[dict[str, Any]]:
    """Export (or reuse) each artifact, check it on the host, and write its bundle + tarball."""
    from resnet_deploy import pipeline
    from resnet_deploy.bench import BenchJob, run_in_subprocess
    from resnet_deploy.config import ExportConfig, Precision
    from resnet_deploy.cpu import cpu_info
    from resnet_deploy.models import load_model
    from resnet_deploy.parity import Candidate, evaluate
    from resnet_deploy.target import get_target
    from resnet_deploy.tolerances import tolerance_for

    progress = progress or Progress()
    precision = Precision.parse(precision).value
    for t in targets:
        get_target(t).check_config(ExportConfig(precision=precision))
    with progress.step(f"loading model {model_ref}"):
        model_name, model = load_model(model_ref, **{k: v for k, v in (model_options or {}).items() if v is not None})
    ref = pipeline.make_reference(model_name, model, data, n, threads, progress)
    sha = ref.meta["source_sha256"]
    calib_factory = pipeline.lazy_calibration(calib, model, calib_size)

    tol = tolerance_for(precision)
    out_dir = Path(out_root) / "bundles"
    out_dir.mkdir(parents=True, exist_ok=True)
    made = []
    for t in targets:
        a = pipeline.find_or_export(model_name, model, t, precision, out_root, sha, calib_factory, progress)
        with get_target(t).runner(a, threads=threads) as r:
            report = evaluate(model_name, ref.x, ref.labels, ref.outputs, ref.meta["keras"],
                              [Candidate(f"{t}/{precision}", precision, r, str(a.path))], {precision: tol},
                              progress=progress)
        res = report.results[0]
        if res.breaches:
            raise ParityError(f"{t}/{precision} breaks its tolerance on the host ({'; '.join(map(str, res.breaches))}); "
                              "not packaging an artifact that fails parity.")
        with progress.step(f"timing {t} {precision} on the host"):
            lat = run_in_subprocess(BenchJob("artifact", threads, 1, artifact=str(a.path)))
        name = bundle_name(model_name, t, precision)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}.partial-", dir=out_dir))
        try:
            bundle = staging / name
            bundle.mkdir()
            for f in a.files:
                shutil.copy2(a.path / f, bundle / f)
            arrays = {"x": ref.x, "outputs": ref.outputs}
            if ref.labels is not None:
                arrays["labels"] = ref.labels
            np.savez_compressed(bundle / core.REFERENCE, **arrays)
            shutil.copy2(SELFTEST_SOURCE, bundle / "selftest.py")
            files = [*a.files, core.REFERENCE, "selftest.py"]
            m = dict(a.manifest)
            m.pop("files", None)
            manifest = {
                "schema_version": core.SCHEMA_VERSION, "bundle": name, **m, "model_file": a.files[0],
                "files": {f: {"sha256": sha256_file(bundle / f), "bytes": (bundle / f).stat().st_size} for f in files},
                "tolerance": asdict(tol),
                "reference": {"samples": int(len(ref.x)), "data": ref.meta["data"], "keras": ref.meta["keras"]},
                "host": {"threads": threads, "cpu": cpu_info(), "runtime": res.info,
                         "parity": res.metrics.to_dict(), "latency": {k: lat[k] for k in
                                                                      ("p50", "p90", "p99", "mean", "std", "runs",
                                                                       "first_ms", "load_ms", "peak_rss_mb")}},
                "packaged_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            }
            write_json_atomic(bundle / core.MANIFEST, manifest)
            (bundle / core.MANIFEST_SUM).write_text(f"{sha256_file(bundle / core.MANIFEST)}  {core.MANIFEST}\n")
            tmp_tar = staging / f"{name}.tar.gz"
            with tarfile.open(tmp_tar, "w:gz") as tar:
                tar.add(bundle, arcname=name)
            final_dir, final_tar = out_dir / name, out_dir / f"{name}.tar.gz"
            if final_dir.exists():
                shutil.rmtree(final_dir)
            bundle.rename(final_dir)
            os.replace(tmp_tar, final_tar)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        made.append({"target": t, "precision": precision, "bundle": str(final_dir), "tarball": str(final_tar),
                     "bytes": final_tar.stat().st_size, "host": manifest["host"]})
    return made


# ---------------------------------------------------------------------------------------------
# unpack and verify
# ---------------------------------------------------------------------------------------------


def safe_extract(tar_path: Path, dest: Path) -> Path:
    """Extract a bundle tarball into dest; refuse members that would land outside it
    (absolute paths, '..'), links and device files. Returns the bundle directory."""
    try:
        tar = tarfile.open(tar_path, "r:*")
    except (tarfile.TarError, OSError) as e:
        raise InputError(f"{str(tar_path)!r} is not a readable .tar.gz bundle ({e}); re-run `package`.") from e
    with tar:
        members = tar.getmembers()
        tops = set()
        for m in members:
            parts = Path(m.name).parts
            if m.name.startswith(("/", "\\")) or Path(m.name).is_absolute() or ".." in parts:
                raise IntegrityError(f"{str(tar_path)!r}: member {m.name!r} would land outside the target directory; refused.")
            if not (m.isfile() or m.isdir()):
                raise IntegrityError(f"{str(tar_path)!r}: member {m.name!r} is a link or special file; refused.")
            tops.add(parts[0] if parts else "")
        if len(tops) != 1 or "" in tops:
            raise IntegrityError(f"{str(tar_path)!r} does not hold exactly one bundle directory; re-run `package`.")
        dest.mkdir(parents=True, exist_ok=True)
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")
        else:  # checked member by member above
            tar.extractall(dest)  # noqa: S202
    return dest / tops.pop()


def open_bundle(path: Path, workdir: Path) -> Path:
    """A bundle directory from a directory or a .tar.gz, verified on the host."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"Bundle {str(path)!r} does not exist; create one with `package`.")
    bundle = safe_extract(path, workdir) if path.is_file() else path
    try:
        core.verify_bundle(str(bundle))
    except core.BundleError as e:
        raise IntegrityError(f"bundle refused on the host: {e}") from e
    return bundle


# ---------------------------------------------------------------------------------------------
# deploy
# ---------------------------------------------------------------------------------------------


def _parse_selftest(stdout: str, stderr: str, code: int, where: str) -> dict:
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            try:
                return {**json.loads(line), "exit_code": code}
            except json.JSONDecodeError:
                break
    tail = (stderr.strip().splitlines() or ["no output"])[-1]
    raise DeployError(f"the self-test on {where} printed no result (exit {code}): {tail[:300]}")


def _selftest_args(script: str, bundle: str, threads: int | None, protocol: dict | None) -> list[str]:
    args = [script, "--bundle", bundle]
    if threads:
        args += ["--threads", str(threads)]
    for key in ("warmup_s", "seconds"):
        if protocol and key in protocol:
            args += [f"--{key.replace('_', '-')}", str(protocol[key])]
    return args


def deploy_local(bundle: Path, dest: Path, python: str | None = None, threads: int | None = None,
                 protocol: dict | None = None, timeout: float = 900) -> dict:
    """Copy the bundle into dest/<name> and run its self-test there with `python`."""
    dest = Path(dest) / bundle.name
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(bundle, dest)
    py = python or sys.executable
    if shutil.which(py) is None and not Path(py).is_file():
        raise InputError(f"--python {py!r} is not an executable; pass the device's Python interpreter.")
    try:
        proc = subprocess.run([py, *_selftest_args(str(dest / "selftest.py"), str(dest), threads, protocol)],
                              capture_output=True, text=True, timeout=timeout, cwd=dest)
    except subprocess.TimeoutExpired:
        raise DeployError(f"the self-test in {str(dest)!r} did not finish within {timeout:.0f} s.") from None
    return _parse_selftest(proc.stdout, proc.stderr, proc.returncode, str(dest))


def parse_ssh_url(url: str) -> tuple[str, int, str]:
    """ssh://user@host:port/path -> ("user@host", port, "/path")."""
    u = urlsplit(url)
    if u.scheme != "ssh" or not u.hostname or not u.path or u.path == "/":
        raise InputError(f"--to {url!r} is not ssh://[user@]host[:port]/path; e.g. ssh://pi@10.0.0.7:22/home/pi/models.")
    try:
        port = u.port or 22
    except ValueError:
        raise InputError(f"--to {url!r} has an invalid port.") from None
    dest = f"{u.username}@{u.hostname}" if u.username else u.hostname
    return dest, port, u.path


def deploy_ssh(bundle: Path, url: str, python: str = "python3", threads: int | None = None,
               protocol: dict | None = None, identity: Path | None = None, ssh_options: list[str] | None = None,
               connect_timeout: int = 10, timeout: float = 900) -> dict:
    """Copy the bundle with the OpenSSH client (scp), run its self-test on the device, return its JSON.

    Every local command is an argument list (no local shell); the remote command is quoted with
    shlex for the device's shell. BatchMode means no password prompts: use a key.
    """
    host, port, path = parse_ssh_url(url)
    opts = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={connect_timeout}", "-o", "StrictHostKeyChecking=accept-new",
            "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3"]
    if identity:
        opts += ["-i", str(identity)]
    for o in ssh_options or []:
        opts += ["-o", o]
    for tool in ("ssh", "scp"):
        if shutil.which(tool) is None:
            raise DeployError(f"the OpenSSH client ({tool}) is not installed; apt-get install openssh-client.")
    remote_dir = f"{path.rstrip('/')}/{bundle.name}"
    where = f"{host}:{port}"

    def run(cmd: list[str], step: str, limit: float) -> subprocess.CompletedProcess:
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=limit)
        except subprocess.TimeoutExpired:
            raise DeployError(f"{step} on {where} did not finish within {limit:.0f} s; is the device reachable?") from None
        if proc.returncode == 255:  # ssh's own failure: connection, auth, host key
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise DeployError(f"cannot reach {where} over SSH ({tail[:200]}); check the address, port, key and that sshd runs.")
        return proc

    ssh = ["ssh", "-p", str(port), *opts, host]
    step_limit = connect_timeout * 3 + 30
    proc = run([*ssh, shlex.join(["rm", "-rf", remote_dir]) + " && " + shlex.join(["mkdir", "-p", path])],
               "preparing the folder", step_limit)
    if proc.returncode != 0:
        raise DeployError(f"could not create {path!r} on {where}: {proc.stderr.strip()[:200]}")
    scp = ["scp", "-q", "-r", "-P", str(port), *opts, str(bundle), f"{host}:{path}/"]
    try:
        proc = run(scp, "copying the bundle", step_limit + 300)
    except DeployError:
        # OpenSSH 9 scp speaks SFTP; devices without an sftp subsystem (dropbear, minimal images)
        # only take the classic scp protocol (-O). The connection itself worked a moment ago.
        proc = run([scp[0], "-O", *scp[1:]], "copying the bundle (classic scp protocol)", step_limit + 300)
    if proc.returncode != 0:
        raise DeployError(f"copying the bundle to {where}:{path} failed: {proc.stderr.strip()[:200]}")
    remote = shlex.join([python, *_selftest_args(f"{remote_dir}/selftest.py", remote_dir, threads, protocol)])
    proc = run([*ssh, remote], "the self-test", timeout)
    return _parse_selftest(proc.stdout, proc.stderr, proc.returncode, where)


def comparison_markdown(result: dict) -> str:
    """The device's numbers next to the host's."""
    host = result.get("host") or {}
    hp, hl = host.get("parity", {}), host.get("latency", {})
    dm, dl = result.get("metrics", {}), result.get("latency", {})

    def f(v: Any, fmt: str) -> str:
        if v is None:
            return "-"
        return f"{v * 100:.2f}%" if fmt == "%" else format(v, fmt)

    rows = [("accuracy", hp.get("accuracy"), dm.get("accuracy"), "%"),
            ("top-1 agreement", hp.get("top1_agreement"), dm.get("top1_agreement"), "%"),
            ("cosine", hp.get("cosine"), dm.get("cosine"), ".6f"), ("max abs", hp.get("max_abs"), dm.get("max_abs"), ".4g"),
            ("SQNR dB", hp.get("sqnr_db"), dm.get("sqnr_db"), ".1f"),
            ("p50 ms", hl.get("p50"), dl.get("p50"), ".3f"), ("p90 ms", hl.get("p90"), dl.get("p90"), ".3f"),
            ("peak RSS MB", hl.get("peak_rss_mb"), dl.get("peak_rss_mb"), ".0f")]
    rt = result.get("runtime", {})
    lines = [f"### {result.get('bundle')}: {'OK' if result.get('ok') else 'FAILED'} on the device "
             f"({rt.get('runtime', '?')} {rt.get('version', '')}, Python {result.get('python')}, numpy {result.get('numpy')})",
             "", "| | host | device |", "|---|---|---|"]
    lines += [f"| {name} | {f(h, fmt)} | {f(d, fmt)} |" for name, h, d, fmt in rows]
    if result.get("error"):
        lines += ["", f"error: {result['error']}"]
    for b in result.get("breaches", []):
        lines.append(f"breach: {b['metric']}={b['value']:.6g} (limit {'<=' if b['kind'] == 'max' else '>='} {b['limit']:g})")
    return "\n".join(lines) + "\n"


def deploy(bundle_path: Path, to: str, python: str | None = None, threads: int | None = None,
           protocol: dict | None = None, identity: Path | None = None, ssh_options: list[str] | None = None,
           connect_timeout: int = 10) -> dict:
    """Verify on the host, copy to the device (folder or ssh://), self-test there, return its JSON."""
    with tempfile.TemporaryDirectory(prefix="resnet-deploy-") as work:
        bundle = open_bundle(Path(bundle_path), Path(work))
        t0 = time.perf_counter()
        if to.startswith("ssh://"):
            result = deploy_ssh(bundle, to, python or "python3", threads, protocol, identity, ssh_options, connect_timeout)
        elif "://" in to:
            raise InputError(f"--to {to!r}: only a folder or ssh://user@host:port/path is supported.")
        else:
            result = deploy_local(bundle, Path(to), python, threads, protocol)
        result["deploy_seconds"] = round(time.perf_counter() - t0, 2)
        result["to"] = to
        return result
