"""Fleet deploy (`deploy --inventory`) through Ansible against real OpenSSH servers on loopback
addresses: an x86 device, an emulated aarch64 device (qemu), a device whose Python hangs in the
self-test, one that refuses our key, and one where nothing listens. Each host's row is checked,
and what is (not) left on each device's disk."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import arm_device, devices, sshd
from tests.support.cli import QUICK
from tests.support.cli import run_cli

pytestmark = pytest.mark.skipif(not sshd.available(), reason="openssh-server is not installed (.ci/run installs it)")


class Fleet:
    def __init__(self, d: Path) -> None:
        for sub in ("fleet", "refuse"):
            (d / sub).mkdir()
        self.servers = {
            "x86": sshd.InetdSshd(d / "fleet", host="127.0.0.2"),
            "arm": sshd.InetdSshd(d / "fleet", host="127.0.0.4"),
            "hang": sshd.InetdSshd(d / "fleet", host="127.0.0.6"),
            "refuse": sshd.InetdSshd(d / "refuse", host="127.0.0.3"),
        }  # its own keys: ours is refused
        with socket.socket() as s:  # a port nobody listens on any more: connection refused
            s.bind(("127.0.0.5", 0))
            self.off_port = s.getsockname()[1]
        self.d, self.key, self.log = d, d / "fleet" / "user_key", d / "selftests.log"
        self.box_python = self._python("boxpy", "x86-box", hang=False)
        self.hang_python = self._python("hangpy", "stuck", hang=True)  # a device whose self-test never ends

    def _python(self, name: str, tag: str, hang: bool) -> Path:
        """The device's Python, logging when its self-test starts and ends (device-side times)."""
        real = devices.ensure("onnxruntime")
        run = "sleep 300" if hang else f'{real} "$@"; rc=$?'
        py = self.d / name
        py.write_text(
            f'#!/bin/sh\ncase "$1" in */selftest.py)\n  echo "{tag} start $(date +%s.%N)" >> {self.log}\n'
            f'  {run}\n  echo "{tag} end $(date +%s.%N)" >> {self.log}\n  exit $rc;;\nesac\n'
            f'exec {real} "$@"\n'
        )
        py.chmod(0o755)
        return py

    def windows(self, since: float) -> dict[str, dict[str, float]]:
        """Per host, the start (and end, if it ended) of its first self-test begun after `since`, as the
        device logged them; a hung self-test killed earlier may log its end any time later."""
        seen: dict[str, dict[str, float]] = {}
        for line in self.log.read_text().splitlines():
            host, kind, t = line.split()
            if kind == "start" and float(t) >= since and host not in seen:
                seen[host] = {"start": float(t)}
            elif kind == "end" and host in seen and "end" not in seen[host]:
                seen[host]["end"] = float(t)
        return seen

    def remote(self, name: str) -> Path:
        return self.d / "devices" / name

    def inventory(self, arm_python: str) -> Path:
        s = self.servers
        inv = self.d / "fleet.ini"
        inv.write_text(
            "# a fleet: two groups, per-host Python, folder and timeout\n[x86]\n"
            f"x86-box ansible_host=127.0.0.2 ansible_port={s['x86'].port} "
            f"ansible_python_interpreter={self.box_python} resnet_deploy_path={self.remote('x86-box')}\n"
            f"stuck ansible_host=127.0.0.6 ansible_port={s['hang'].port} ansible_python_interpreter={self.hang_python} "
            f"resnet_deploy_timeout=4 resnet_deploy_path={self.remote('stuck')}\n"
            f"locked ansible_host=127.0.0.3 ansible_port={s['refuse'].port}\n"
            f"gone ansible_host=127.0.0.5 ansible_port={self.off_port}\n\n[arm]\n"
            f"pi ansible_host=127.0.0.4 ansible_port={s['arm'].port} ansible_python_interpreter={arm_python} "
            f"resnet_deploy_path={self.remote('pi')}\n\n[all:vars]\nansible_user={s['x86'].user}\n"
        )
        return inv

    def args(self) -> list[str]:
        return ["-i", str(self.key), "-o", f"UserKnownHostsFile={self.d / 'known_hosts'}", "--connect-timeout", "5"]

    def close(self) -> None:
        for s in self.servers.values():
            s.close()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    f = Fleet(tmp_path_factory.mktemp("fleet"))
    yield f
    f.close()


def _rows(out: str) -> dict[str, dict]:
    return {r["host"]: r for r in json.loads(out)["hosts"]}


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) if folder.exists() else []


@pytest.mark.skipif(not arm_device.available(), reason="no emulated aarch64 device (.ci/run builds it)")
def test_an_arm64_bundle_to_a_mixed_fleet(fleet, arm_bundles, capsys):
    """Every host gets its own row: the aarch64 board passes, x86 boxes refuse the arm64 bundle
    before anything is copied, a refused login and a dead address fail alone; exit 1."""
    inv = fleet.inventory(str(arm_device.ensure("aarch64-litert")))
    code, out, err = run_cli(
        capsys,
        "deploy",
        str(arm_bundles / "digits-tflite-int8.tar.gz"),
        "--inventory",
        str(inv),
        "--to",
        str(fleet.remote("default")),
        *fleet.args(),
        "--json",
        *QUICK,
    )
    assert code == 1 and "4 of 5 hosts failed" in err, err + out
    rows = _rows(out)
    pi = rows["pi"]
    assert pi["ok"] and pi["status"] == "ok" and pi["arch"] == "aarch64" and pi["device"]["arch"] == "aarch64"
    assert pi["runtime"].startswith("ai_edge_litert") and pi["selftest"]["machine"] == "aarch64"
    assert pi["accuracy"] >= 0.9 and pi["agreement"] >= 0.95 and pi["cosine"] > 0.99 and pi["p50"] > 0
    assert (fleet.remote("pi") / "digits-tflite-int8" / "model.tflite").is_file() and not _leftovers(fleet.remote("pi"))
    for host in ("x86-box", "stuck"):
        assert rows[host]["status"] == "profile mismatch" and rows[host]["arch"] == "x86_64", rows[host]
        assert "built for arm64" in rows[host]["error"] and not (fleet.remote(host) / "digits-tflite-int8").exists()
    assert rows["locked"]["status"] == "login refused" and "Permission denied" in rows["locked"]["error"]
    assert rows["gone"]["status"] == "unreachable" and "Connection refused" in rows["gone"]["error"]
    assert [s["task"] for s in rows["gone"]["steps"]] == ["probe"]


def test_a_fleet_with_a_hung_device_one_host_at_a_time(fleet, bundles, capsys):
    """--limit picks the x86 group; the host whose self-test hangs times out after its own
    resnet_deploy_timeout while the other passes; --max-parallel 1 never overlaps two hosts' steps."""
    inv = fleet.inventory("python3")
    t0 = time.time()
    code, out, err = run_cli(
        capsys,
        "deploy",
        bundles["onnx"]["tarball"],
        "--inventory",
        str(inv),
        "--limit",
        "x86",
        "--to",
        str(fleet.remote("default")),
        "--max-parallel",
        "1",
        *fleet.args(),
        "--json",
        *QUICK,
    )
    assert code == 1, err
    rows = _rows(out)
    assert set(rows) == {"x86-box", "stuck", "locked", "gone"}
    box, stuck = rows["x86-box"], rows["stuck"]
    assert box["ok"] and box["runtime"].startswith("onnxruntime") and box["arch"] == "x86_64" and box["accuracy"] >= 0.9
    assert stuck["status"] == "timed out" and "within 4" in stuck["error"], stuck
    selftest = next(s for s in stuck["steps"] if s["task"] == "selftest")
    assert 3.5 <= selftest["end"] - selftest["start"] < 30, selftest
    # the bundle is in place on the stuck device (its copy finished); no staging folder anywhere
    assert (fleet.remote("stuck") / "digits-onnx-int8" / "model.onnx").is_file()
    assert not _leftovers(fleet.remote("stuck")) and not _leftovers(fleet.remote("x86-box"))
    w = fleet.windows(t0)
    box_start, box_end, stuck_start = w["x86-box"]["start"], w["x86-box"]["end"], w["stuck"]["start"]
    assert stuck_start >= box_end or box_start >= stuck_start + 3.9, (
        f"two self-tests ran at once with --max-parallel 1: {w}"
    )
    code, table, _ = run_cli(
        capsys,
        "deploy",
        bundles["onnx"]["tarball"],
        "--inventory",
        str(inv),
        "--limit",
        "x86-box",
        "--to",
        str(fleet.remote("default")),
        *fleet.args(),
        *QUICK,
    )
    assert code == 0 and "| x86-box | x86_64 | onnxruntime" in table and "1 ok, 0 failed" in table, table


def test_a_full_device_disk_fails_that_host_and_leaves_its_old_bundle(fleet, bundles, tmpfs, capsys):
    """The copy dies on a full disk: the staging folder is removed and the version already
    there stays as it was; the row says copy failed."""
    disk = tmpfs("board-disk", "96k")
    (disk / "digits-onnx-int8").mkdir()
    (disk / "digits-onnx-int8" / "old-version.txt").write_text("the previous bundle\n")
    inv = fleet.d / "full.ini"
    inv.write_text(
        f"x86-box ansible_host=127.0.0.2 ansible_port={fleet.servers['x86'].port} "
        f"ansible_python_interpreter={devices.ensure('onnxruntime')} ansible_user={fleet.servers['x86'].user}\n"
    )
    code, out, err = run_cli(
        capsys,
        "deploy",
        bundles["onnx"]["tarball"],
        "--inventory",
        str(inv),
        "--to",
        str(disk),
        *fleet.args(),
        "--json",
        *QUICK,
    )
    row = _rows(out)["x86-box"]
    assert code == 1 and row["status"] == "copy failed" and "partial copy was removed" in row["error"], row
    assert sorted(p.name for p in disk.rglob("*")) == ["digits-onnx-int8", "old-version.txt"]


@pytest.mark.parametrize(
    "text, said",
    [
        ("[boards]\npi ansible_host=127.0.0.2\n[boards:vars\nx=1\n", "line 3 ('[boards:vars')"),
        ("[boards]\npi ansible_host=127.0.0.2 port\n", "line 2 ('pi ansible_host=127.0.0.2 port'): Expected key=value"),
        ("[boards]\npi ansible_host=no-such-board.invalid\n", "does not resolve: 'pi' (no-such-board.invalid)"),
        ("[boards]\npi ansible_port=twenty-two\n", "ansible_port of host 'pi' is 'twenty-two', not a number"),
    ],
)
def test_a_bad_inventory_is_one_line_and_nothing_is_copied(bundles, tmp_path, capsys, text, said):
    inv = tmp_path / "hosts.ini"
    inv.write_text(text)
    code, out, err = run_cli(
        capsys,
        "deploy",
        bundles["onnx"]["tarball"],
        "--inventory",
        str(inv),
        "--to",
        str(tmp_path / "remote"),
        "--connect-timeout",
        "2",
    )
    assert code == 2 and said in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "remote").exists()


def test_a_bad_yaml_inventory_names_the_line(bundles, tmp_path, capsys):
    inv = tmp_path / "hosts.yml"
    inv.write_text("all:\n  hosts:\n    a:\n      ansible_port: 22\n   b: 1\n")
    code, _, err = run_cli(capsys, "deploy", bundles["onnx"]["tarball"], "--inventory", str(inv), "--to", "/tmp/x")
    assert code == 2 and f"inventory {inv} line 5:" in err and "fix the YAML there" in err, err


@pytest.mark.parametrize(
    "args, said",
    [
        (["--inventory", "INV", "--to", "relative/dir"], "--to is the absolute folder on every device"),
        (["--to", "/tmp/x", "--limit", "boards"], "--limit selects hosts of an --inventory"),
        (["--inventory", "INV", "--to", "/tmp/x", "--limit", "nothere"], "has no hosts matching --limit 'nothere'"),
        (["--inventory", "INV", "--to", "/tmp/x", "--max-parallel", "0"], "--max-parallel"),
        (["--inventory", "missing.ini", "--to", "/tmp/x"], "is not a file"),
    ],
)
def test_fleet_options_are_checked(bundles, tmp_path, capsys, args, said):
    inv = tmp_path / "hosts.yml"
    inv.write_text("all:\n  children:\n    boards:\n      hosts:\n        pi: {ansible_host: 127.0.0.1}\n")
    args = [str(inv) if a == "INV" else a for a in args]
    code, _, err = run_cli(capsys, "deploy", bundles["onnx"]["tarball"], *args)
    assert code == 2 and said in err and "Traceback" not in err, err


def test_the_playbook_ships_with_the_package():
    from resnet_deploy.ship.fleet import PLAYBOOK, TASKS

    text = PLAYBOOK.read_text()
    assert all(f"name: {t}\n" in text for t in TASKS) and shutil.which("ssh")
    playbook_tool = Path(sys.executable).parent / "ansible-playbook"
    assert (
        subprocess.run(
            [str(playbook_tool), "--syntax-check", "-i", "localhost,", str(PLAYBOOK)], capture_output=True
        ).returncode
        == 0
    )


def test_when_ansible_itself_fails_it_is_one_line(fleet, bundles, tmp_path, capsys, monkeypatch):
    from resnet_deploy.ship import fleet as fleet_module

    broken = tmp_path / "fleet.yml"
    broken.write_text("- hosts: all\n  tasks:\n    - no_such_module_here: {}\n")
    monkeypatch.setattr(fleet_module, "PLAYBOOK", broken)
    code, _, err = run_cli(
        capsys,
        "deploy",
        bundles["onnx"]["tarball"],
        "--inventory",
        str(fleet.inventory("python3")),
        "--limit",
        "x86-box",
        "--to",
        str(tmp_path / "remote"),
        *fleet.args(),
    )
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert code == 1 and len(lines) == 1 and "ansible-playbook failed before reaching any host" in lines[0], err
    assert "no_such_module_here" in lines[0] and not (tmp_path / "remote").exists()


def _script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def test_every_host_status_a_device_can_end_in(fleet, bundles, tmp_path, capsys):
    """Four devices on one OpenSSH server, each failing at its own step: no Python there, a probe
    that fails, a self-test that dies before printing its result, and (with a bundle whose
    tolerance no int8 model meets: consistent, unsigned) a tolerance breach on the device."""
    real = devices.ensure("onnxruntime")
    pys = {
        "nopy": tmp_path / "no" / "python3",
        "badprobe": _script(tmp_path / "badprobe", 'echo "probe exploded" >&2; exit 3\n'),
        "dies": _script(
            tmp_path / "dies",
            f'case "$1" in */selftest.py) echo "ImportError: no numpy" >&2; exit 1;; esac\nexec {real} "$@"\n',
        ),
        "breach": real,
    }
    port, user = fleet.servers["x86"].port, fleet.servers["x86"].user
    inv = tmp_path / "statuses.ini"
    inv.write_text(
        "".join(
            f"{h} ansible_host=127.0.0.2 ansible_port={port} ansible_user={user} "
            f"ansible_python_interpreter={py} resnet_deploy_path={tmp_path / 'dev' / h}\n"
            for h, py in pys.items()
        )
    )
    code, out, err = run_cli(
        capsys,
        "deploy",
        bundles["onnx"]["tarball"],
        "--inventory",
        str(inv),
        "--limit",
        "nopy,badprobe,dies",
        "--to",
        "/unused",
        *fleet.args(),
        "--json",
        *QUICK,
    )
    rows = _rows(out)
    assert code == 1 and "3 of 3 hosts failed" in err, err
    assert rows["nopy"]["status"] == "no python" and "set ansible_python_interpreter" in rows["nopy"]["error"]
    assert rows["badprobe"]["status"] == "probe failed" and "probe exploded" in rows["badprobe"]["error"]
    assert rows["dies"]["status"] == "self-test failed" and "no numpy" in rows["dies"]["error"], rows["dies"]
    assert not (tmp_path / "dev" / "nopy").exists() and not (tmp_path / "dev" / "badprobe").exists()
    # a consistent bundle (manifest and checksum agree) whose tolerance no int8 model meets
    strict = tmp_path / "strict" / Path(bundles["onnx"]["bundle"]).name
    shutil.copytree(bundles["onnx"]["bundle"], strict)
    m = json.loads((strict / "manifest.json").read_text())
    m["tolerance"]["cosine_min"] = 0.999999999
    (strict / "manifest.json").write_text(json.dumps(m))
    from resnet_deploy.portable.integrity import sha256_file

    (strict / "manifest.sha256").write_text(f"{sha256_file(strict / 'manifest.json')}  manifest.json\n")
    code, out, err = run_cli(
        capsys,
        "deploy",
        str(strict),
        "--inventory",
        str(inv),
        "--limit",
        "breach",
        "--to",
        "/unused",
        *fleet.args(),
        "--json",
        *QUICK,
    )
    row = _rows(out)["breach"]
    assert code == 1 and row["status"] == "FAILED" and "cosine=" in row["error"] and "limit >=" in row["error"], row
    assert row["accuracy"] is not None and row["p50"] > 0  # the device's numbers are still reported


def test_host_vars_folders_set_a_hosts_values(tmp_path):
    """Ansible's host_vars/ and group_vars/ beside the inventory: merged by Ansible's rules."""
    from resnet_deploy.ship.inventory import load

    (tmp_path / "host_vars").mkdir()
    (tmp_path / "group_vars").mkdir()
    inv = tmp_path / "hosts.ini"
    inv.write_text("[boards]\npi ansible_host=127.0.0.1\nnano ansible_host=127.0.0.1\n")
    (tmp_path / "group_vars" / "boards.yml").write_text("resnet_deploy_timeout: 120\nresnet_deploy_path: /srv/models\n")
    (tmp_path / "host_vars" / "pi.yml").write_text(
        "resnet_deploy_path: /home/pi/models\nansible_python_interpreter: /opt/venv/bin/python\n"
    )
    hosts = {h.name: h for h in load(inv)}
    assert hosts["pi"].path == "/home/pi/models" and hosts["pi"].python == "/opt/venv/bin/python"
    assert hosts["nano"].path == "/srv/models" and hosts["pi"].timeout == hosts["nano"].timeout == 120.0
    (tmp_path / "host_vars" / "pi.yml").write_text("resnet_deploy_path: /srv/m{{ 7*7 }}\n")
    with pytest.raises(Exception, match=r"resnet_deploy_path '/srv/m\{\{ 7\*7 \}\}' has the character '\{'"):
        load(inv)


def test_hosts_work_in_parallel_with_max_parallel(fleet, bundles, capsys):
    """--max-parallel 4: the healthy box's self-test runs while the stuck one hangs."""
    inv = fleet.inventory("python3")
    t0 = time.time()
    code, out, _ = run_cli(
        capsys,
        "deploy",
        bundles["onnx"]["tarball"],
        "--inventory",
        str(inv),
        "--limit",
        "x86-box,stuck",
        "--to",
        str(fleet.remote("default")),
        "--max-parallel",
        "4",
        *fleet.args(),
        "--json",
        *QUICK,
    )
    rows = _rows(out)
    assert code == 1 and rows["x86-box"]["ok"] and rows["stuck"]["status"] == "timed out", rows
    w = fleet.windows(t0)
    box_start, box_end, stuck_start = w["x86-box"]["start"], w["x86-box"]["end"], w["stuck"]["start"]
    assert box_start < stuck_start + 4 and stuck_start < box_end, w  # the two overlapped


def test_a_steps_reason_is_its_own_line_not_sshs_notes():
    """Several inventory hosts on one address share ssh's control socket; ssh then notes it on
    stderr after the step's own last line. The row gives the step's line."""
    from resnet_deploy.ship.fleet_result import said

    res = {
        "stdout": "",
        "stderr": "probe exploded\nControlSocket /tmp/cp/c23 already exists, disabling multiplexing\n"
        "Warning: Permanently added '[127.0.0.2]:2222' (ED25519) to the list of known hosts.",
    }
    assert said(res) == "probe exploded"
