"""`deploy`: verify a bundle on the host, copy it to a device (a folder, or over SSH with the
OpenSSH client), run its self-test there and put the device's numbers next to the host's.

No local shell is involved (every command is an argument list); the remote command is quoted
with shlex for the device's shell.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resnet_deploy.errors import DeployError, DeviceMismatch, InputError
from resnet_deploy.portable.constants import MANIFEST, SELFTEST
from resnet_deploy.portable.metrics import breach_text
from resnet_deploy.requests import DeployRequest
from resnet_deploy.ship.ssh import SshDevice, _publish_on_device, device_paths, parse_ssh_url
from resnet_deploy.ship.unpack import open_bundle
from resnet_deploy.store.record import Record


# ---------------------------------------------------------------------------------------------
# deploy
# ---------------------------------------------------------------------------------------------


def last_json_line(text: str) -> dict | None:
    """The last line of a command's output that is a JSON object (the self-test's result; on a
    tty, stderr and \r mix in), or None."""
    for line in reversed(text.replace("\r", "").strip().splitlines()):
        if line.strip().startswith("{"):
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                continue
            return value if isinstance(value, dict) else None
    return None


def _parse_selftest(stdout: str, stderr: str, code: int, where: str) -> dict:
    result = last_json_line(stdout)
    if result is not None:
        return {**result, "exit_code": code}
    tail = (stderr.strip().splitlines() or ["no output"])[-1]
    raise DeployError(f"the self-test on {where} printed no result (exit {code}): {tail[:300]}")


def _selftest_args(
    script: str,
    bundle: str,
    threads: int | None,
    protocol: dict | None,
    allow_mismatch: bool = False,
    verify_key: str | None = None,
) -> list[str]:
    """The self-test's command line; verify_key is the public key's path on the device."""
    args = [
        script,
        "--bundle",
        bundle,
        *(["--allow-profile-mismatch"] if allow_mismatch else []),
        *(["--verify-key", verify_key] if verify_key else []),
    ]
    if threads:
        args += ["--threads", str(threads)]
    for key in ("warmup_s", "seconds"):
        if protocol and key in protocol:
            args += [f"--{key.replace('_', '-')}", str(protocol[key])]
    return args


def _check_device(probed: subprocess.CompletedProcess, where: str, manifest: dict, allow: bool) -> dict:
    """The device's facts from the probe, checked against the bundle's profile before any copy."""
    from resnet_deploy.portable.device import ProfileMismatch, check_profile

    try:
        facts = json.loads(probed.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        tail = (probed.stderr.strip().splitlines() or ["no output"])[-1]
        raise DeployError(
            f"could not probe {where} with its Python (exit {probed.returncode}): {tail[:200]}; check --python."
        ) from None
    try:
        check_profile(manifest.get("device_profile"), allow, device=facts)
    except ProfileMismatch as e:
        raise DeviceMismatch(f"{where}: {e}; nothing was copied.") from None
    return facts


def _local_python(python: str | None) -> str:
    py = python or sys.executable
    if shutil.which(py) is None and not Path(py).is_file():
        raise InputError(f"--python {py!r} is not an executable; pass the device's Python interpreter.")
    return py


def deploy_local(
    bundle: Path,
    dest: Path,
    python: str | None = None,
    threads: int | None = None,
    protocol: dict | None = None,
    timeout: float = 900,
    allow_mismatch: bool = False,
    verify_key: Path | None = None,
) -> dict:
    """Probe this machine with the device's Python, copy the bundle into dest/<name> (staged,
    then renamed into place) and run its self-test there (checking the signature too with
    `verify_key` if the device's Python has model-signing)."""
    from resnet_deploy.store.fsutil import publish_dir, staging_dir
    from resnet_deploy.portable.device import probe_program

    py = _local_python(python)
    probed = subprocess.run([py, "-c", probe_program()], capture_output=True, text=True, timeout=120)
    facts = _check_device(probed, str(dest), _manifest(bundle), allow_mismatch)
    dest = Path(dest).absolute() / bundle.name  # the self-test runs with the bundle as its working folder
    with staging_dir(dest) as staging:
        for f in sorted(p for p in bundle.rglob("*") if p.is_file()):  # copyfile: a full disk is one OSError
            (staging / bundle.name / f.relative_to(bundle)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, staging / bundle.name / f.relative_to(bundle))
        publish_dir(staging / bundle.name, dest)
    try:
        key = str(Path(verify_key).resolve()) if verify_key else None
        proc = subprocess.run(
            [py, *_selftest_args(str(dest / SELFTEST), str(dest), threads, protocol, allow_mismatch, key)],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=dest,
        )
    except subprocess.TimeoutExpired:
        raise DeployError(f"the self-test in {str(dest)!r} did not finish within {timeout:.0f} s.") from None
    return {**_parse_selftest(proc.stdout, proc.stderr, proc.returncode, str(dest)), "probe": facts}


def _manifest(bundle: Path) -> dict:
    return json.loads((bundle / MANIFEST).read_text())  # verified by open_bundle


def deploy_ssh(
    bundle: Path,
    url: str,
    python: str = "python3",
    threads: int | None = None,
    protocol: dict | None = None,
    ssh_args: tuple[str, ...] = (),
    connect_timeout: int = 10,
    timeout: float = 900,
    allow_mismatch: bool = False,
    verify_key: Path | None = None,
) -> dict:
    """Probe the device (one round trip), copy the bundle with scp (and the public key, so the
    device checks the signature too if it has model-signing), run its self-test there, return
    its JSON."""
    from resnet_deploy.portable.device import probe_program

    dev = SshDevice(url, list(ssh_args), connect_timeout)
    probed = dev.ssh(shlex.join([python, "-c", probe_program()]), "probing the device", dev.step_limit + 60)
    facts = _check_device(probed, dev.where, _manifest(bundle), allow_mismatch)
    remote_dir = _publish_on_device(dev, bundle)
    key = device_paths(dev.path, bundle.name, "")["key"] if verify_key else None
    if key and verify_key:
        dev.copy(Path(verify_key), key, dev.step_limit)
    remote = shlex.join(
        [python, *_selftest_args(f"{remote_dir}/{SELFTEST}", remote_dir, threads, protocol, allow_mismatch, key)]
    )
    proc = dev.ssh(remote, "the self-test", timeout)
    return {**_parse_selftest(proc.stdout, proc.stderr, proc.returncode, dev.where), "probe": facts}


def comparison_markdown(result: dict) -> str:
    """The device's numbers next to the host's."""
    host = result.get("host") or {}
    hp, hl = host.get("parity", {}), host.get("latency", {})
    dm, dl = result.get("metrics", {}), result.get("latency", {})

    def f(v: Any, fmt: str) -> str:
        if v is None:
            return "-"
        return f"{v * 100:.2f}%" if fmt == "%" else format(v, fmt)

    rows = [
        ("accuracy", hp.get("accuracy"), dm.get("accuracy"), "%"),
        ("top-1 agreement", hp.get("top1_agreement"), dm.get("top1_agreement"), "%"),
        ("cosine", hp.get("cosine"), dm.get("cosine"), ".6f"),
        ("max abs", hp.get("max_abs"), dm.get("max_abs"), ".4g"),
        ("SQNR dB", hp.get("sqnr_db"), dm.get("sqnr_db"), ".1f"),
        ("p50 ms", hl.get("p50"), dl.get("p50"), ".3f"),
        ("p90 ms", hl.get("p90"), dl.get("p90"), ".3f"),
        ("peak RSS MB", hl.get("peak_rss_mb"), dl.get("peak_rss_mb"), ".0f"),
    ]
    rt = result.get("runtime", {})
    lines = [
        f"### {result.get('bundle')}: {'OK' if result.get('ok') else 'FAILED'} on the device "
        f"({rt.get('runtime', '?')} {rt.get('version', '')}, Python {result.get('python')}, numpy {result.get('numpy')})",
        "",
        "| | host | device |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {f(h, fmt)} | {f(d, fmt)} |" for name, h, d, fmt in rows]
    if result.get("error"):
        lines += ["", f"error: {result['error']}"]
    for b in result.get("breaches", []):
        lines.append(f"breach: {breach_text(b)}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class DeployResult(Record):
    """One device's outcome: the self-test's own JSON (its verdict, metrics, latency, exit code),
    what the probe found, where it went and how long it took. to_dict() is the self-test's JSON
    with probe, deploy_seconds and to beside it."""

    selftest: dict[str, Any]
    probe: dict[str, Any]
    to: str
    deploy_seconds: float

    @property
    def ok(self) -> bool:
        return bool(self.selftest.get("ok"))

    def to_dict(self) -> dict[str, Any]:
        return {**self.selftest, "probe": self.probe, "deploy_seconds": self.deploy_seconds, "to": self.to}


def deploy(req: DeployRequest) -> DeployResult:
    """The `deploy` command: verify on the host, copy to the device (folder or ssh://), self-test
    there; returns the device's result."""
    if "://" in req.to and not req.to.startswith("ssh://"):
        raise InputError(f"--to {req.to!r}: only a folder or ssh://user@host:port/path is supported.")
    if req.to.startswith("ssh://"):
        parse_ssh_url(req.to)  # a malformed address fails before anything is unpacked
    with tempfile.TemporaryDirectory(prefix="resnet-deploy-") as work:
        bundle = open_bundle(req.bundle, Path(work), req.verify_key)
        t0 = time.perf_counter()
        if req.to.startswith("ssh://"):
            result = deploy_ssh(
                bundle,
                req.to,
                req.python or "python3",
                req.threads,
                req.protocol,
                req.ssh_args,
                req.connect_timeout,
                allow_mismatch=req.allow_profile_mismatch,
                verify_key=req.verify_key,
            )
        else:
            result = deploy_local(
                bundle,
                Path(req.to),
                req.python,
                req.threads,
                req.protocol,
                allow_mismatch=req.allow_profile_mismatch,
                verify_key=req.verify_key,
            )
        probe = result.pop("probe")
        return DeployResult(result, probe, req.to, round(time.perf_counter() - t0, 2))
