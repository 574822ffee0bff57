"""One device over SSH with the OpenSSH client: its address, safe folders, ssh/scp with our
defaults, and the shell commands that publish a bundle there atomically (shared with fleets)."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

from resnet_deploy.errors import DeployError, DiskFull, InputError


def parse_ssh_url(url: str) -> tuple[str, int | None, str]:
    """ssh://user@host:port/path -> ("user@host", port, "/path"); the port is None when the URL
    names none, so ssh's own config (an alias's Port) decides."""
    u = urlsplit(url)
    if u.scheme != "ssh" or not u.hostname or not u.path or u.path == "/":
        raise InputError(
            f"--to {url!r} is not ssh://[user@]host[:port]/path; e.g. ssh://pi@10.0.0.7:22/home/pi/models."
        )
    try:
        port = u.port
    except ValueError:
        raise InputError(f"--to {url!r} has an invalid port.") from None
    dest = f"{u.username}@{u.hostname}" if u.username else u.hostname
    if dest.startswith("-") or any(c.isspace() for c in dest):
        raise InputError(
            f"--to {url!r}: the user or host {dest!r} is not an SSH address; e.g. ssh://pi@10.0.0.7/home/pi/models."
        )
    return dest, port, device_folder(u.path, "--to's folder")


def device_folder(path: str, what: str) -> str:
    """A folder on a device: absolute and made of safe characters only (it reaches the device's
    shell through scp's classic protocol and Ansible's templating), else one line naming the
    character."""
    from resnet_deploy.portable.names import UnsafeName, check_folder

    try:
        return check_folder(path, what)
    except UnsafeName as e:
        raise InputError(f"{e}; choose another folder.") from None


class SshDevice:
    """One device reached with the OpenSSH client. BatchMode means no password prompts: use a key."""

    def __init__(self, url: str, ssh_args: list[str], connect_timeout: int) -> None:
        """`ssh_args`: the user's own (DeployRequest.ssh_args: -F, -i, -o), after our defaults."""
        self.host, port, self.path = parse_ssh_url(url)
        self.where = f"{self.host}:{port}" if port else self.host
        self.opts = [
            "-o",
            "BatchMode=yes",
            "-o",
            f"ConnectTimeout={connect_timeout}",
            "-o",
            "StrictHostKeyChecking=accept-new",
            "-o",
            "ServerAliveInterval=5",
            "-o",
            "ServerAliveCountMax=3",
            *ssh_args,
        ]
        self.port = str(port) if port else None  # no port in the URL: ssh_config's Port, else 22
        # a step that only talks to sshd: connect (<= connect_timeout) plus a few round trips
        self.step_limit = connect_timeout + 20
        for tool in ("ssh", "scp"):
            if shutil.which(tool) is None:
                raise DeployError(f"the OpenSSH client ({tool}) is not installed; apt-get install openssh-client.")

    def run(self, cmd: list[str], step: str, limit: float) -> subprocess.CompletedProcess:
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=limit)
        except subprocess.TimeoutExpired:
            raise DeployError(
                f"{step} on {self.where} did not finish within {limit:.0f} s; is the device reachable?"
            ) from None
        if proc.returncode == 255:  # ssh's own failure: connection, auth, host key
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise DeployError(
                f"cannot reach {self.where} over SSH ({tail[:200]}); check the address, port, key and that sshd runs."
            )
        return proc

    def ssh(self, remote_command: str, step: str, limit: float) -> subprocess.CompletedProcess:
        return self.run(
            ["ssh", *(["-p", self.port] if self.port else []), *self.opts, "--", self.host, remote_command],
            step,
            limit,
        )

    def copy(self, local: Path, remote: str, limit: float) -> None:
        """scp -r local to remote on the device (a folder ending in / or a file's path); the classic
        protocol (-O) as a retry for devices without an sftp subsystem (dropbear, minimal images:
        OpenSSH 9's scp speaks SFTP)."""
        scp = [
            "scp",
            "-q",
            "-r",
            *(["-P", self.port] if self.port else []),
            *self.opts,
            "--",
            str(local.resolve()),
            f"{self.host}:{remote}",
        ]
        try:
            proc = self.run(scp, "copying the bundle", limit)
        except DeployError:
            proc = self.run([scp[0], "-O", *scp[1:]], "copying the bundle (classic scp protocol)", limit)
        if proc.returncode != 0:
            said = "; ".join(ln.strip() for ln in proc.stderr.strip().splitlines())[:200]
            full = self.full_disk(local)
            raise (DiskFull if full else DeployError)(
                f"copying the bundle to {self.where}:{self.path} failed{full}: {said}"
            )

    def full_disk(self, local: Path) -> str:
        """ " (the device's disk is full: ...)" when df on the device says the bundle does not fit."""
        need = sum(p.stat().st_size for p in local.rglob("*") if p.is_file()) // 1024 + 1
        proc = self.ssh(f"df -Pk {shlex.quote(self.path)} | tail -n 1", "checking free space", self.step_limit)
        fields = proc.stdout.split()
        free = int(fields[3]) if proc.returncode == 0 and len(fields) > 3 and fields[3].isdigit() else None
        if free is None or free >= need:
            return ""
        return f" (the device's disk is full: {free} KiB free, the bundle needs {need} KiB; free space there)"


def device_paths(base: str, name: str, tag: str) -> dict[str, str]:
    """Where a bundle goes on a device: its final folder, a staging folder beside it (removed
    whatever happens) and the place the previous version waits while the new one moves in."""
    base = base.rstrip("/") or "/"
    return {
        "final": f"{base}/{name}",
        "staging": f"{base}/.{name}.partial-{tag}",
        "old": f"{base}/.{name}.old-{tag}",
        "key": f"{base}/{name}.verify-key.pub",
    }  # the public key the self-test checks the signature with


def prepare_command(paths: dict[str, str]) -> str:
    return f"rm -rf {shlex.quote(paths['staging'])} && mkdir -p {shlex.quote(paths['staging'])}"


def cleanup_command(paths: dict[str, str]) -> str:
    return f"rm -rf {shlex.quote(paths['staging'])}"


def swap_command(paths: dict[str, str], name: str) -> str:
    """Move staging/<name> into place; the previous version is removed only once the new one is in."""
    q = {k: shlex.quote(v) for k, v in {**paths, "staged": f"{paths['staging']}/{name}"}.items()}
    return (
        f"rm -rf {q['old']} && {{ [ ! -e {q['final']} ] || mv {q['final']} {q['old']}; }} && "
        f"mv {q['staged']} {q['final']} && rm -rf {q['staging']} {q['old']}"
    )


def _publish_on_device(dev: SshDevice, bundle: Path) -> str:
    """Copy into a staging folder beside the bundle's place on the device, then swap it in: a
    failed copy (full disk, dropped link) is removed and leaves the previous bundle as it was."""
    paths = device_paths(dev.path, bundle.name, str(os.getpid()))
    proc = dev.ssh(prepare_command(paths), "preparing the folder", dev.step_limit)
    if proc.returncode != 0:
        raise DeployError(f"could not create {dev.path!r} on {dev.where}: {proc.stderr.strip()[:200]}")
    try:
        dev.copy(bundle, paths["staging"] + "/", dev.step_limit + 300)
    except DeployError:
        dev.ssh(cleanup_command(paths), "removing the partial copy", dev.step_limit)
        raise
    proc = dev.ssh(swap_command(paths, bundle.name), "putting the bundle in place", dev.step_limit)
    if proc.returncode != 0:
        dev.ssh(cleanup_command(paths), "removing the partial copy", dev.step_limit)
        raise DeployError(f"could not put the bundle in place on {dev.where}: {proc.stderr.strip()[:200]}")
    return paths["final"]
