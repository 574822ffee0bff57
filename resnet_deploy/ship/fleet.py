"""`deploy BUNDLE --inventory FILE`: one bundle to many devices, through Ansible.

Ansible (driven by ansible-runner in a process of its own, fleet_engine.py, with the playbook in
resnet_deploy/data/fleet.yml) is the engine: its inventory format, groups and --limit patterns are what fleet owners already have;
it connects with the OpenSSH client (so ~/.ssh/config, ProxyJump and known_hosts apply), works
on `--max-parallel` hosts at once (forks) with the free strategy (no host waits for another),
and a failing host stops only itself. What we add around it:

- the bundle is verified (and its signature checked) once on the host, then sent as one tar of
  exactly the verified files; every device gets it in a staging folder that is swapped into
  place only when complete, and removed if anything fails (nothing half-copied);
- each device is probed first with our own device code, which also checks the bundle's device
  profile there: a device that does not fit gets nothing copied;
- one row per host (arch, runtime, accuracy, agreement, cosine, p50, status) and one JSON.
"""

from __future__ import annotations

import json
import locale
import os
import shlex
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from resnet_deploy.ship.deploy import _manifest, _selftest_args
from resnet_deploy.ship.ssh import cleanup_command, device_paths, prepare_command, swap_command
from resnet_deploy.errors import DeployError, InputError
from resnet_deploy.ship.fleet_result import FleetResult, host_row
from resnet_deploy.ship.inventory import FleetHost, check_resolves, load
from resnet_deploy.portable.constants import SELFTEST
from resnet_deploy.progress import Progress
from resnet_deploy.requests import DeployRequest
from resnet_deploy.ship.unpack import open_bundle

PLAYBOOK = Path(__file__).parents[1] / "data" / "fleet.yml"
STEP_SECONDS = 60  # one shell step on a device (mkdir, tar, mv) once connected, with margin for an emulated CPU
TASKS = ("probe", "prepare", "copy", "copy key", "unpack", "swap", "selftest")


def _require_engine() -> None:
    from resnet_deploy.extras import require

    require("fleet", "deploy --inventory")


def _tar(bundle: Path, dest: Path) -> Path:
    """The verified bundle as one uncompressed tar (members: <name>/...), made once for every host."""
    with tarfile.open(dest, "w") as tar:
        tar.add(bundle, arcname=bundle.name)
    return dest


def _host_vars(h: FleetHost, req: DeployRequest, name: str, profile: dict | None) -> dict[str, Any]:
    """Every command one host runs, built here (the same functions as a single ssh deploy)."""
    from resnet_deploy.portable.device import probe_program

    python = h.python or req.python or "python3"
    paths = device_paths(h.path or req.to, name, f"{os.getpid()}-{h.name}")
    key_dest = paths["key"] if req.verify_key else ""
    args = _selftest_args(
        f"{paths['final']}/{SELFTEST}",
        paths["final"],
        req.threads,
        req.protocol,
        req.allow_profile_mismatch,
        key_dest or None,
    )
    timeout = h.timeout or req.host_timeout
    hv = {
        "rd_probe_command": shlex.join([python, "-c", probe_program(profile, req.allow_profile_mismatch)]),
        "rd_prepare_command": prepare_command(paths),
        "rd_staging": paths["staging"],
        "rd_unpack_command": f"tar -xf {shlex.quote(paths['staging'] + '/bundle.tar')} -C "
        f"{shlex.quote(paths['staging'])} && rm -f {shlex.quote(paths['staging'] + '/bundle.tar')}",
        "rd_swap_command": swap_command(paths, name),
        "rd_cleanup_command": cleanup_command(paths),
        "rd_selftest_command": shlex.join([python, *args]),
        "rd_timeout": int(timeout) + 1,
        "rd_step_timeout": req.connect_timeout + STEP_SECONDS,
        "rd_copy_timeout": req.connect_timeout + 300,
        "rd_key_dest": key_dest,
        "rd_verify_key": str(Path(req.verify_key).resolve()) if req.verify_key else "",
    }
    if not h.python:  # Ansible's own modules (copy) use the same Python as the self-test
        hv["ansible_python_interpreter"] = python
    return hv


def unsafe_yaml(doc: Any) -> str:
    """YAML for Ansible with every string tagged !unsafe: Ansible never renders `{{ ... }}` or
    `{% ... %}` in what we hand it (names, folders, commands are data, not templates)."""
    import yaml

    class Unsafe(str):
        pass

    class Dumper(yaml.SafeDumper):
        pass

    Dumper.add_representer(Unsafe, lambda d, v: d.represent_scalar("!unsafe", str(v), style='"'))

    def wrap(v: Any) -> Any:
        if isinstance(v, dict):
            return {str(k) if isinstance(k, str) else k: wrap(x) for k, x in v.items()}  # Ansible's str subclasses too
        if isinstance(v, str):  # "" holds no template (and !unsafe "" reads back as null)
            return Unsafe(str(v)) if v else ""
        return v

    return yaml.dump(wrap(doc), Dumper=Dumper, width=1 << 20, allow_unicode=True)


def _environment(req: DeployRequest, work: Path) -> dict[str, str]:
    """Ansible's settings for this run: our ssh defaults (no prompts, new host keys accepted and
    recorded, the connect timeout), its state inside `work`, no retry files, no colour."""
    ssh = [
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=accept-new",
        "-o",
        "ServerAliveInterval=5",
        "-o",
        "ServerAliveCountMax=3",
        *req.ssh_args,
    ]
    env = {
        "ANSIBLE_SSH_COMMON_ARGS": shlex.join(ssh),
        "ANSIBLE_TIMEOUT": str(req.connect_timeout),
        "ANSIBLE_HOME": str(work / "ansible"),
        "ANSIBLE_LOCAL_TEMP": str(work / "ansible" / "tmp"),
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(work / "cp"),
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_NOCOLOR": "True",
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_SSH_RETRIES": "0",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False",
        # ansible-playbook beside this Python (a venv that is not activated)
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
    if "utf" not in (locale.getpreferredencoding(False) or "").lower():
        env["LC_ALL"] = "C.UTF-8"  # Ansible refuses to start in a non-UTF-8 locale
    return env


def _created(event: dict) -> float:
    """When Ansible's controller made the event (the handler may see events late, in batches)."""
    from datetime import datetime

    try:
        return datetime.fromisoformat(str(event.get("created"))).timestamp()
    except ValueError:
        return time.time()


class Collector:
    """Ansible's events, kept per host and task (result; queued and done as Ansible's controller
    saw them, not device times); a progress line per finished host."""

    ENDS = ("runner_on_ok", "runner_on_failed", "runner_on_unreachable", "runner_on_skipped")

    def __init__(self, progress: Progress) -> None:
        self.results: dict[str, dict[str, dict]] = {}
        self.steps: dict[str, list[dict]] = {}
        self.progress = progress

    def __call__(self, event: dict) -> bool:
        data = event.get("event_data") or {}
        host, task, kind = data.get("host"), data.get("task"), event.get("event", "")
        if not host or task not in TASKS:
            return True
        steps = self.steps.setdefault(host, [])
        if kind == "runner_on_start":
            steps.append({"task": task, "start": _created(event), "end": None, "result": None})
        elif kind in self.ENDS:
            self.results.setdefault(host, {})[task] = {"event": kind, **(data.get("res") or {})}
            step = next((s for s in reversed(steps) if s["task"] == task and s["end"] is None), None)
            if step:
                step.update(end=_created(event), result=kind.removeprefix("runner_on_"))
            if task == "selftest" or kind in ("runner_on_failed", "runner_on_unreachable"):
                self.progress.log(f"{host}: {task} {kind.removeprefix('runner_on_')}")
        return True

    def timeline(self, host: str, t0: float) -> list[dict]:
        """The host's steps with start and end in seconds from t0."""
        return [
            {**s, "start": round(s["start"] - t0, 3), "end": None if s["end"] is None else round(s["end"] - t0, 3)}
            for s in self.steps.get(host, [])
        ]


def deploy_fleet(req: DeployRequest, progress: Progress | None = None) -> FleetResult:
    """Verify the bundle once, then probe, copy and self-test on every inventory host."""
    progress = progress or Progress()
    _require_engine()
    if req.inventory is None:
        raise InputError("a fleet deploy needs --inventory FILE.")
    hosts = load(req.inventory, req.limit)
    check_resolves(hosts, req.ssh_args)
    with tempfile.TemporaryDirectory(prefix="rd-fleet-") as tmp:
        work = Path(tmp)
        bundle = open_bundle(req.bundle, work, req.verify_key)
        manifest = _manifest(bundle)
        tarball = _tar(bundle, work / "bundle.tar")
        ours = {
            "all": {"hosts": {h.name: _host_vars(h, req, bundle.name, manifest.get("device_profile")) for h in hosts}}
        }
        for h in ours["all"]["hosts"].values():
            h["rd_tarball"] = str(tarball)
        (work / "ours.yml").write_text(unsafe_yaml(ours))
        events = Collector(progress)
        t0, wall0 = time.monotonic(), time.time()
        with progress.step(f"deploying {bundle.name} to {len(hosts)} hosts ({req.max_parallel} at a time)"):
            final, stdout = _run_playbook(work, req, hosts, events)
        seconds = time.monotonic() - t0
    rows = [
        host_row(
            h, events.results.get(h.name, {}), events.timeline(h.name, wall0), stdout, h.timeout or req.host_timeout
        )
        for h in hosts
    ]
    return FleetResult(bundle.name, str(req.inventory), req.to, _engine(final, req), rows, round(seconds, 2))


ENGINE_ENV = ("HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TMPDIR", "SSH_AUTH_SOCK")  # all the engine inherits


def _run_playbook(work: Path, req: DeployRequest, hosts: list[FleetHost], events: Collector) -> tuple[dict, str]:
    """ansible-playbook on the inventory plus our per-host variables (work/ours.yml), run by
    fleet_engine.py in a fresh Python with a minimal environment; its events go to `events` as
    they come. If Ansible itself failed (no host has any result), one line with what it said."""
    (work / "runner").mkdir()
    job: dict[str, Any] = {
        "private_data_dir": str(work / "runner"),
        "playbook": str(PLAYBOOK),
        "forks": req.max_parallel,
        "inventory": [str(Path(str(req.inventory)).resolve()), str(work / "ours.yml")],
        "limit": ",".join(h.name for h in hosts),
        "envvars": _environment(req, work),
    }
    (work / "job.json").write_text(json.dumps(job))
    env = {k: os.environ[k] for k in ENGINE_ENV if k in os.environ}
    env.update(PATH=job["envvars"]["PATH"], PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "resnet_deploy.ship.fleet_engine", str(work / "job.json")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=work,
    )
    final = None
    assert proc.stdout is not None and proc.stderr is not None  # both are PIPEs
    for line in proc.stdout:
        msg = json.loads(line) if line.startswith("{") else {}
        if "final" in msg:
            final = msg["final"]
        elif msg:
            events(msg)
    stderr = proc.stderr.read()
    proc.wait()
    output = (final or {}).get("output") or stderr
    if final is None or not events.results:
        said = [ln.strip() for ln in output.splitlines() if ln.strip()]
        said = [ln for ln in said if "ERROR" in ln or "Error" in ln] or said[-1:] or ["no output"]
        raise DeployError(
            f"ansible-playbook failed before reaching any host (status {(final or {}).get('status')}, "
            f"exit {(final or {}).get('rc', proc.returncode)}): {said[0][:300]}"
        )
    return final, output


def _engine(final: dict, req: DeployRequest) -> dict:
    from importlib.metadata import version

    return {
        "name": "ansible",
        "ansible-core": version("ansible-core"),
        "ansible-runner": version("ansible-runner"),
        "forks": req.max_parallel,
        "strategy": "free",
        "status": final["status"],
        "rc": final["rc"],
    }
