"""Fleet deploy at size: N OpenSSH servers on loopback (127.0.0.10, .11, ...), each a device
folder with the ONNX Runtime device virtualenv, one int8 digits bundle, `deploy --inventory` at
several --max-parallel values. A few hosts are broken on purpose, one kind each: dead (nothing
listening), refusing our key, without the Python the inventory names, and out of disk (a 96 KB
tmpfs; needs mount rights, else left out and said). Every broken host must get its own failed
row while every other host succeeds.

    python benchmarks/fleet_speed.py --hosts 100 --parallel 1,8,32 [--broken 2] [--sequential]

Prints wall time, seconds per host and the controller's peak memory (our process, and the
largest process under it: ansible-playbook and its forks) per --max-parallel, then the failed
rows. --sequential adds N single `deploy --to ssh://` runs one after another. Nothing here is
timed in the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support import devices, sshd  # noqa: E402

QUICK = ["--warmup-s", "0.1", "--seconds", "0.3"]
RUN = """
import json, resource, sys
from resnet_deploy.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit as e:
    pass
me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"self_mb": me.ru_maxrss / 1024, "child_mb": kids.ru_maxrss / 1024}), file=sys.stderr)
"""


def _cli(*args: str) -> tuple[float, str, dict]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", RUN, *args], cwd=ROOT, capture_output=True, text=True)
    return time.perf_counter() - t0, proc.stdout, json.loads(proc.stderr.strip().splitlines()[-1])


def _closed_port(host: str) -> int:
    s = socket.socket()
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there any more: connection refused, as a powered-off service
    return port


def _full_disk(work: Path) -> Path | None:
    mnt = work / "full-disk"
    mnt.mkdir()
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mnt)], capture_output=True)
    return mnt if ok.returncode == 0 else None


def _inventory(work: Path, hosts: int, broken: int, py: Path) -> tuple[Path, list, dict[str, str]]:
    """The inventory, the servers to close, and host -> the way it is broken."""
    for d in ("keys", "other-keys"):
        (work / d).mkdir(exist_ok=True)
    good = sshd.InetdSshd(work / "keys", host="127.0.0.10")  # whose key the controller uses
    servers, lines, kinds = [good], [], {}
    disk = _full_disk(work)
    plan = ["dead", "refuses our key", "no python"] + (["out of disk"] if disk else [])
    for i in range(hosts):
        host, kind = f"127.0.0.{10 + i % 240}", (plan[i % len(plan)] if i < broken * len(plan) else None)
        s = sshd.InetdSshd(work / ("other-keys" if kind == "refuses our key" else "keys"), host=host)
        servers.append(s)
        port = _closed_port(host) if kind == "dead" else s.port
        python = "/nonexistent/python3" if kind == "no python" else str(py)
        path = disk / f"b{i}" if kind == "out of disk" and disk else work / "boards" / str(i)
        lines.append(
            f"board{i} ansible_host={host} ansible_port={port} ansible_user={s.user} "
            f"ansible_python_interpreter={python} resnet_deploy_path={path}\n"
        )
        if kind:
            kinds[f"board{i}"] = kind
    if not disk:
        print("out-of-disk hosts left out: no mount rights for a tmpfs here")
    inv = work / "fleet.ini"
    inv.write_text("".join(lines))
    return inv, servers, kinds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=8)
    ap.add_argument("--parallel", default="1,8,32")
    ap.add_argument("--broken", type=int, default=2, help="hosts of each broken kind")
    ap.add_argument("--sequential", action="store_true")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rd-fleet-bench-"))
    _cli("package", "--targets", "onnx", "--n", "60", "--out", str(work))
    bundle = str(work / "bundles" / "digits-onnx-int8.tar.gz")
    py = devices.ensure("onnxruntime")
    inv, servers, kinds = _inventory(work, a.hosts, a.broken, py)
    ssh = ["-i", str(servers[0].key), "-o", f"UserKnownHostsFile={work / 'known_hosts'}"]
    ssh += ["-o", "StrictHostKeyChecking=accept-new", "-o", "ConnectTimeout=10"]
    rows, failed = [], {}
    try:
        for n in map(int, a.parallel.split(",")):
            args = ["deploy", bundle, "--inventory", str(inv), "--to", "/unused", "--max-parallel", str(n)]
            secs, out, mem = _cli(*args, *ssh, "--json", *QUICK)
            result = {r["host"]: r for r in json.loads(out)["hosts"]} if out.strip() else {}
            bad = {h: r for h, r in result.items() if r.get("status") != "ok"}
            rows.append((n, secs, mem, len(result) - len(bad), len(bad)))
            failed = bad
        if a.sequential:
            t0 = time.perf_counter()
            for i, s in enumerate(servers[1:]):
                if f"board{i}" not in kinds:
                    _cli("deploy", bundle, "--to", s.url(work / f"single{i}"), "--python", str(py), *ssh, *QUICK)
            rows.append(("sequential ssh://", time.perf_counter() - t0, {}, a.hosts - len(kinds), 0))
    finally:
        for s in servers:
            s.close()
        subprocess.run(["umount", str(work / "full-disk")], capture_output=True)
    _print(a.hosts, rows, failed, kinds)


def _print(hosts: int, rows: list, failed: dict, kinds: dict) -> None:
    from resnet_deploy.backend.cpu import cpu_info

    print(
        f"\nFleet deploy of digits-onnx-int8 to {hosts} loopback devices, {cpu_info()['model']}, {os.cpu_count()} cores\n"
    )
    print("| --max-parallel | wall s | per host s | ok | failed | controller peak MB | largest child MB |")
    print("|---|---|---|---|---|---|---|")
    for n, secs, mem, ok, bad in rows:
        print(
            f"| {n} | {secs:.1f} | {secs / hosts:.2f} | {ok} | {bad} | {mem.get('self_mb', 0):.0f} | {mem.get('child_mb', 0):.0f} |"
        )
    print("\n| host | broken as | status | error |\n|---|---|---|---|")
    for host, r in sorted(failed.items()):
        print(f"| {host} | {kinds.get(host, '(not broken!)')} | {r.get('status')} | {str(r.get('error', ''))[:100]} |")
    missed = sorted(set(kinds) - set(failed))
    print(f"\nbroken hosts without a failed row: {missed or 'none'}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from results import recorded

    with recorded("fleet_speed"):
        main()
