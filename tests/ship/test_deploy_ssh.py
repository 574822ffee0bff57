"""Deploy over real SSH: OpenSSH servers on loopback (tests/support/sshd.py), the classic-scp fallback,
and devices that are unreachable or silent, each failing within --connect-timeout."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from tests.support import devices, sshd
from tests.support.cli import QUICK
from tests.support.cli import run_cli

pytestmark = pytest.mark.skipif(not sshd.available(), reason="openssh-server is not installed (.ci/run installs it)")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = sshd.InetdSshd(tmp_path_factory.mktemp("sshd"))
    yield s
    s.close()


@pytest.fixture(scope="module")
def server_without_sftp(tmp_path_factory):
    s = sshd.InetdSshd(tmp_path_factory.mktemp("sshd-nosftp"), sftp=False)
    yield s
    s.close()


def test_deploy_over_ssh_runs_the_selftest_on_the_device(server, bundles, tmp_path, capsys):
    remote = tmp_path / "remote.home" / "models"
    code, out, err = run_cli(
        capsys,
        "deploy",
        bundles["onnx"]["tarball"],
        "--to",
        server.url(remote),
        "--python",
        str(devices.ensure("onnxruntime")),
        *server.ssh_args(),
        "--json",
        *QUICK,
    )
    assert code == 0, err
    res = json.loads(out)
    assert res["ok"] and res["runtime"]["runtime"] == "onnxruntime" and res["host"]["latency"]["p50"] > 0
    assert (remote / "digits-onnx-int8" / "model.onnx").is_file()
    assert (remote / "digits-onnx-int8" / "rd_portable" / "metrics.py").is_file()


@pytest.fixture(scope="module")
def jump(tmp_path_factory):
    s = sshd.InetdSshd(tmp_path_factory.mktemp("sshd-jump"))
    yield s
    s.close()


def test_deploy_through_a_jump_host_named_in_an_ssh_config(server, jump, bundles, tmp_path, capsys):
    """--ssh-config reaches the ssh that ProxyJump starts (-i and -o would not), and a URL without
    a port leaves the port to the config's Host entry."""
    known = tmp_path / "known_hosts"
    common = (
        f"  User {server.user}\n  UserKnownHostsFile {known}\n  StrictHostKeyChecking accept-new\n  BatchMode yes\n"
    )
    config = tmp_path / "ssh_config"
    config.write_text(
        f"Host jumpbox\n  HostName 127.0.0.1\n  Port {jump.port}\n  IdentityFile {jump.key}\n{common}"
        f"Host board\n  HostName 127.0.0.1\n  Port {server.port}\n  IdentityFile {server.key}\n"
        f"  ProxyJump jumpbox\n{common}"
    )
    served_before = len(jump.procs)
    remote = tmp_path / "via-jump"
    code, out, err = run_cli(
        capsys,
        "deploy",
        bundles["onnx"]["tarball"],
        "--to",
        f"ssh://board{remote}",
        "--ssh-config",
        str(config),
        "--python",
        str(devices.ensure("onnxruntime")),
        "--json",
        *QUICK,
    )
    assert code == 0, err
    assert json.loads(out)["ok"] and (remote / "digits-onnx-int8" / "model.onnx").is_file()
    assert len(jump.procs) > served_before  # the jump host carried the connections


def test_a_missing_ssh_config_is_one_line(bundles, tmp_path, capsys):
    code, _, err = run_cli(
        capsys,
        "deploy",
        bundles["onnx"]["tarball"],
        "--to",
        "ssh://board/srv/m",
        "--ssh-config",
        str(tmp_path / "nope"),
    )
    assert code == 2 and err.count("error:") == 1 and "--ssh-config" in err and "Traceback" not in err


def test_deploy_falls_back_to_classic_scp_without_an_sftp_subsystem(server_without_sftp, bundles, tmp_path, capsys):
    """OpenSSH 9's scp speaks SFTP; a device without the sftp subsystem only takes `scp -O`."""
    import subprocess

    remote = tmp_path / "plain"
    remote.mkdir()
    probe = subprocess.run(
        [
            "scp",
            "-q",
            "-P",
            str(server_without_sftp.port),
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=accept-new",
            *server_without_sftp.ssh_args(),
            __file__,
            f"{server_without_sftp.user}@127.0.0.1:{remote}/",
        ],
        capture_output=True,
    )
    assert probe.returncode != 0  # plain (SFTP) scp really fails against this device
    code, out, err = run_cli(
        capsys,
        "deploy",
        bundles["tflite"]["bundle"],
        "--to",
        server_without_sftp.url(remote),
        "--python",
        str(devices.ensure("tflite-runtime")),
        *server_without_sftp.ssh_args(),
        "--json",
        *QUICK,
    )
    assert code == 0, err
    assert json.loads(out)["ok"] and (remote / "digits-tflite-int8" / "model.tflite").is_file()


def _timed_deploy(capsys, bundles, port: int, tmp_path: Path, timeout: int) -> tuple[int, str, float]:
    t0 = time.monotonic()
    code, _, err = run_cli(
        capsys,
        "deploy",
        bundles["onnx"]["bundle"],
        "--to",
        f"ssh://nobody@127.0.0.1:{port}/tmp/x",
        "--connect-timeout",
        str(timeout),
        "-o",
        f"UserKnownHostsFile={tmp_path / 'kh'}",
    )
    return code, err, time.monotonic() - t0


def test_an_unanswered_connection_fails_after_connect_timeout(bundles, tmp_path, capsys):
    """A full accept queue drops SYNs, as a powered-off device on the LAN does: ssh's
    ConnectTimeout must end the wait, not our much longer step limit."""
    with socket.socket() as srv, socket.socket() as filler:
        srv.bind(("127.0.0.1", 0))
        srv.listen(0)
        filler.connect(srv.getsockname())  # the one slot of the backlog is taken
        code, err, elapsed = _timed_deploy(capsys, bundles, srv.getsockname()[1], tmp_path, 2)
    assert code == 1 and "cannot reach nobody@127.0.0.1" in err and "Traceback" not in err, err
    assert 1.5 <= elapsed < 8, elapsed


def test_a_silent_device_fails_after_connect_timeout(bundles, tmp_path, capsys):
    """TCP accepted but no SSH banner (a hung device): bounded by --connect-timeout too."""
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(5)
        code, err, elapsed = _timed_deploy(capsys, bundles, srv.getsockname()[1], tmp_path, 2)
    assert code == 1 and "127.0.0.1" in err and "Traceback" not in err, err
    assert 1.5 <= elapsed < 8, elapsed


def test_a_closed_port_fails_at_once(bundles, tmp_path, capsys):
    with socket.socket() as s:  # bound, not listening: the connection is refused at once
        s.bind(("127.0.0.1", 0))
        code, err, elapsed = _timed_deploy(capsys, bundles, s.getsockname()[1], tmp_path, 10)
    assert code == 1 and "cannot reach" in err and elapsed < 8, (err, elapsed)


def test_bad_ssh_url_is_a_clear_error(bundles, capsys):
    code, _, err = run_cli(capsys, "deploy", bundles["onnx"]["bundle"], "--to", "ssh://host-without-path")
    assert code == 2 and "is not ssh://" in err


@pytest.fixture
def full_disk(tmpfs):
    """A 64 KiB disk holding a previous deploy: room for the folder, not for a bundle."""
    mnt = tmpfs("small-disk", "64k")
    (mnt / "digits-tflite-int8").mkdir()
    (mnt / "digits-tflite-int8" / "previous.txt").write_text("the bundle deployed before")
    return mnt


def _device_tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_a_full_device_disk_over_ssh_leaves_the_previous_bundle_and_nothing_else(server, bundles, full_disk, capsys):
    before = _device_tree(full_disk)
    code, _, err = run_cli(
        capsys,
        "deploy",
        bundles["tflite"]["tarball"],
        "--to",
        server.url(full_disk),
        "--python",
        str(devices.ensure("tflite-runtime")),
        *server.ssh_args(),
        *QUICK,
    )
    assert code == 7 and err.count("error:") == 1, err
    assert "disk is full" in err and "Traceback" not in err
    assert _device_tree(full_disk) == before  # no partial copy, no 0-byte files, the old bundle untouched


def test_a_full_device_disk_as_a_folder_leaves_nothing(bundles, full_disk, capsys):
    before = _device_tree(full_disk)
    code, _, err = run_cli(capsys, "deploy", bundles["tflite"]["tarball"], "--to", str(full_disk), *QUICK)
    assert code == 7 and err.count("error:") == 1 and "the disk is full" in err, err
    assert _device_tree(full_disk) == before
