"""Fleet deploy wall time: N OpenSSH servers on loopback (127.0.0.10, .11, ...), each a device
with the ONNX Runtime device virtualenv, one int8 digits bundle. Compares `deploy --inventory`
(Ansible, --max-parallel 1 / 4 / N) with N single `deploy --to ssh://` runs one after another
(our own OpenSSH path), in one process run, every configuration repeated.

    python benchmarks/fleet_speed.py --hosts 8 --repeats 2

Prints a Markdown table; nothing is timed in the test suite.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support import devices, sshd  # noqa: E402

QUICK = ["--warmup-s", "0.1", "--seconds", "0.3"]


def _cli(*args: str) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(args)}\n{proc.stderr[-2000:]}")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rd-fleet-bench-"))
    (work / "keys").mkdir()
    _cli("package", "--targets", "onnx", "--n", "60", "--out", str(work))
    bundle = str(work / "bundles" / "digits-onnx-int8.tar.gz")
    py = devices.ensure("onnxruntime")
    servers = [sshd.InetdSshd(work / "keys", host=f"127.0.0.{10 + i}") for i in range(a.hosts)]
    ssh = ["-i", str(servers[0].key), "-o", f"UserKnownHostsFile={work / 'known_hosts'}"]
    inv = work / "fleet.ini"
    inv.write_text(
        "".join(
            f"board{i} ansible_host={s.host} ansible_port={s.port} ansible_user={s.user} "
            f"ansible_python_interpreter={py} resnet_deploy_path={work / 'boards' / str(i)}\n"
            for i, s in enumerate(servers)
        )
    )  # one disk per device, as in a real fleet
    configs = {
        f"deploy --inventory --max-parallel {n}": [
            "deploy",
            bundle,
            "--inventory",
            str(inv),
            "--to",
            "/unused",
            "--max-parallel",
            str(n),
            *ssh,
            *QUICK,
        ]
        for n in sorted({1, min(4, a.hosts), a.hosts})
    }
    times: dict[str, list[float]] = {name: [] for name in [*configs, f"{a.hosts} x deploy --to ssh:// (sequential)"]}
    try:
        for _ in range(a.repeats):
            for name, args in configs.items():
                times[name].append(_cli(*args))
            t0 = time.perf_counter()
            for i, s in enumerate(servers):
                _cli("deploy", bundle, "--to", s.url(work / f"single{i}"), "--python", str(py), *ssh, *QUICK)
            times[f"{a.hosts} x deploy --to ssh:// (sequential)"].append(time.perf_counter() - t0)
    finally:
        for s in servers:
            s.close()
    from resnet_deploy.backend.cpu import cpu_info

    print(
        f"\nFleet deploy of digits-onnx-int8 to {a.hosts} loopback devices, {cpu_info()['model']}, "
        f"{os.cpu_count()} cores; wall seconds, every run\n"
    )
    print("| how | runs (s) | best s | per host s |\n|---|---|---|---|")
    for name, ts in times.items():
        print(f"| {name} | {' / '.join(f'{t:.1f}' for t in ts)} | {min(ts):.1f} | {min(ts) / a.hosts:.2f} |")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from results import recorded

    with recorded("fleet_speed"):
        main()
