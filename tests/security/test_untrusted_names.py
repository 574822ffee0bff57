"""Names and paths that could become code: a bundle's folder name, `--to`, inventory values and
`--python` reach the device's shell (scp's classic protocol, ssh) and Ansible's templating. Each
hostile string is tried through the real tools (ansible-playbook, OpenSSH servers on loopback
with and without SFTP); each must be one `error:` line, a non-zero exit, and nothing run
(a marker file never appears) and nothing left on the device."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.support import devices, sshd
from tests.support.cli import run_cli

QUICK = ["--warmup-s", "0.1", "--seconds", "0.3"]


def _hostile(marker: Path) -> list[str]:
    """Strings that run `touch marker` if a shell or Jinja ever evaluates them ('/' spelled by
    Jinja where a folder name cannot hold one)."""
    slash = "('%c'|format(47))"
    parts = ", ".join(repr(p) for p in marker.parts[1:])
    return [
        f"x{{{{ lookup('pipe', 'touch ' ~ {slash} ~ {slash}.join([{parts}])) }}}}",
        f"d$(touch {marker})".replace("/", "_"),
        "d;touch x;",
        "d`id`",
        "d x",
        "-oProxyCommand=x",
        "m{% if 1 %}",
        "d\nx",
        "d|id",
        "d&id",
        "d>x",
        "d'x",
        'd"x',
        "d\\x",
        "d*",
        "d?",
        "d~x",
        "d#x",
        "d!x",
        "é",
    ]


def _one_error(code: int, err: str, expected: int) -> None:
    assert code == expected, err
    assert err.count("error:") == 1 and "Traceback" not in err, err


# --- a bundle renamed after packaging (its signature does not cover the folder's name) ----------


def _renamed(bundle: Path, tmp_path: Path, name: str) -> Path:
    d = tmp_path / "renamed" / name
    d.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(bundle, d)
    return d


def _renamed_tarball(bundle: Path, tmp_path: Path, name: str) -> Path:
    tar_path = tmp_path / "renamed.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        tar.add(bundle, arcname=name)
    return tar_path


@pytest.mark.parametrize("form", ["folder", "tarball"])
def test_a_renamed_bundle_is_refused_before_anything_runs(bundles, tmp_path, capsys, monkeypatch, form):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "PWNED"
    src = Path(bundles["onnx"]["bundle"])
    for name in [*_hostile(marker)[:3], "innocent-looking"]:
        if "\n" in name:
            continue
        given = _renamed(src, tmp_path, name) if form == "folder" else _renamed_tarball(src, tmp_path, name)
        code, _, err = run_cli(capsys, "deploy", str(given), "--to", str(tmp_path / "device"), *QUICK)
        _one_error(code, err, 6)
        assert ("renamed after packaging" in err or "bundle name" in err) and str(given) in err, err
        assert "rd-verify" not in err and "resnet-deploy-" not in err  # names what the user gave
        assert not (tmp_path / "device").exists() and not marker.exists()
        shutil.rmtree(tmp_path / "renamed", ignore_errors=True)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    key, pub = d / "k.key", d / "k.pub"
    subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key)], check=True)
    subprocess.run(["openssl", "ec", "-in", str(key), "-pubout", "-out", str(pub)], check=True, capture_output=True)
    return key, pub


def test_a_genuinely_signed_bundle_renamed_is_refused_by_verify_and_deploy(bundles, keys, tmp_path, capsys):
    from resnet_deploy.ship.signing import sign_bundle

    signed = tmp_path / "signed" / Path(bundles["onnx"]["bundle"]).name
    shutil.copytree(bundles["onnx"]["bundle"], signed)
    sign_bundle(signed, keys[0])
    code, out, err = run_cli(capsys, "verify", str(signed), "--key", str(keys[1]))
    assert code == 0 and out.startswith("ok:"), err  # the signature is real
    marker = tmp_path / "PWNED"
    renamed = _renamed(signed, tmp_path, _hostile(marker)[0])
    for argv in (
        ["verify", str(renamed), "--key", str(keys[1])],
        ["deploy", str(renamed), "--to", str(tmp_path / "device"), "--verify-key", str(keys[1]), *QUICK],
    ):
        code, _, err = run_cli(capsys, *argv)
        _one_error(code, err, 6)
        assert "renamed after packaging" in err and not marker.exists() and not (tmp_path / "device").exists()


# --- Ansible: what we hand it is data, never a template ------------------------------------------


def _playbook(tmp_path: Path, inventory_text: str) -> subprocess.CompletedProcess:
    (tmp_path / "inv.yml").write_text(inventory_text)
    (tmp_path / "pb.yml").write_text(
        '- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.raw: "{{ rd_command }}"\n'
    )
    tool = Path(sys.executable).parent / "ansible-playbook"
    return subprocess.run(
        [str(tool), "-i", str(tmp_path / "inv.yml"), str(tmp_path / "pb.yml"), "-v"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
            "HOME": str(tmp_path),
            "ANSIBLE_LOCAL_TEMP": str(tmp_path / "t"),
            "ANSIBLE_NOCOLOR": "1",
            "LC_ALL": "C.UTF-8",
        },
    )


def test_ansible_never_renders_a_template_in_our_variables(tmp_path):
    """The real ansible-playbook, a local connection: a `{{ lookup('pipe', ...) }}` inside a
    command we hand over is printed by the shell as text, never run by Ansible. The same value
    without our !unsafe marking does run (so the test would see a regression)."""
    import yaml

    from resnet_deploy.ship.fleet import unsafe_yaml

    def inventory(marker: Path) -> dict:
        hostile = f'{{{{ lookup("pipe", "touch {marker}") }}}}'
        return {
            "all": {
                "hosts": {
                    "box": {
                        "ansible_connection": "local",
                        "ansible_python_interpreter": sys.executable,
                        "rd_command": shlex.join(["printf", "%s", hostile]),
                    }
                }
            }
        }

    ours = inventory(tmp_path / "PWNED")
    proc = _playbook(tmp_path, unsafe_yaml(ours))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'lookup(\\"pipe\\"' in proc.stdout and not (tmp_path / "PWNED").exists()  # printed, not run
    control = inventory(tmp_path / "RENDERED")
    _playbook(tmp_path, yaml.safe_dump(control))
    assert (tmp_path / "RENDERED").exists()  # plain YAML would have been rendered


def test_every_value_the_fleet_hands_ansible_is_marked_unsafe():
    import yaml

    from resnet_deploy.ship.fleet import unsafe_yaml

    doc = {"all": {"hosts": {"h": {"a": "x", "b": 3, "c": True, "d": {"e": "{{ y }}"}, "f": ""}}}}
    text = unsafe_yaml(doc)
    assert text.count("!unsafe") == 2 and "f: ''" in text and '"{{ y }}"' in text

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!unsafe", lambda loader, node: ("unsafe", loader.construct_scalar(node)))
    back = yaml.load(text, Loader=Loader)["all"]["hosts"]["h"]
    assert back == {"a": ("unsafe", "x"), "b": 3, "c": True, "d": {"e": ("unsafe", "{{ y }}")}, "f": ""}


def _inventory(tmp_path: Path, line: str) -> Path:
    inv = tmp_path / "hosts.ini"
    inv.write_text(f"[boards]\n{line}\n")
    return inv


@pytest.mark.parametrize(
    "setting, said",
    [
        ("resnet_deploy_path=/srv/m{{7*7}}", "resnet_deploy_path '/srv/m{{7*7}}' has the character '{'"),
        ("resnet_deploy_path='/srv/$(touch PWNED)'", "has the character '$'"),
        ("resnet_deploy_path=relative/dir", "is not an absolute folder"),
        (
            "ansible_python_interpreter='python3;touch PWNED'",
            "ansible_python_interpreter 'python3;touch PWNED' has the",
        ),
        ("resnet_deploy_timeout=nan", "resnet_deploy_timeout of host 'pi' is 'nan'; pass a finite number > 0"),
        ("resnet_deploy_timeout=inf", "resnet_deploy_timeout of host 'pi' is 'inf'"),
        ("resnet_deploy_timeout=-5", "resnet_deploy_timeout of host 'pi' is -5; pass a finite number > 0"),
    ],
)
def test_inventory_values_that_reach_the_device_are_checked(bundles, tmp_path, capsys, monkeypatch, setting, said):
    monkeypatch.chdir(tmp_path)
    inv = _inventory(tmp_path, f"pi ansible_host=127.0.0.1 {setting}")
    code, _, err = run_cli(capsys, "deploy", bundles["onnx"]["tarball"], "--inventory", str(inv), "--to", "/srv/models")
    _one_error(code, err, 2)
    assert said in err and f"inventory {inv} line 2" in err, err
    assert not (tmp_path / "PWNED").exists()


def test_a_binary_inventory_is_one_line(bundles, tmp_path, capsys):
    inv = tmp_path / "hosts.ini"
    text = b"[boards]\npi ansible_host=127.0.0.1\n"
    inv.write_bytes(text + b"\x00\xff\xfe binary")
    code, _, err = run_cli(capsys, "deploy", bundles["onnx"]["tarball"], "--inventory", str(inv), "--to", "/srv/m")
    _one_error(code, err, 2)
    assert f"inventory {inv} line 3: byte {len(text)} (0x00) is not UTF-8 text" in err, err


@pytest.mark.parametrize(
    "to, char", [("/srv/m{{ 7*7 }}", "'{'"), ("/srv/d$(id)", "'$'"), ("/srv/a;b", "';'"), ("/srv/a b", "U+0020")]
)
def test_fleet_to_is_refused_before_anything_runs(bundles, tmp_path, capsys, to, char):
    inv = _inventory(tmp_path, "pi ansible_host=127.0.0.1")
    code, _, err = run_cli(capsys, "deploy", bundles["onnx"]["tarball"], "--inventory", str(inv), "--to", to)
    _one_error(code, err, 2)
    assert f"has the character {char}" in err, err


# --- SSH: identical with and without SFTP ---------------------------------------------------------


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    if not sshd.available():
        pytest.skip("openssh-server is not installed (.ci/run installs it)")
    made = {
        "sftp": sshd.InetdSshd(tmp_path_factory.mktemp("sftp")),
        "classic scp": sshd.InetdSshd(tmp_path_factory.mktemp("nosftp"), sftp=False),
    }
    yield made
    for s in made.values():
        s.close()


@pytest.mark.parametrize("kind", ["sftp", "classic scp"])
def test_hostile_remote_folders_and_names_never_reach_the_device_shell(
    servers, bundles, tmp_path, capsys, monkeypatch, kind
):
    monkeypatch.chdir(tmp_path)
    server, marker = servers[kind], tmp_path / "PWNED"
    py = str(devices.ensure("onnxruntime"))
    device = tmp_path / "device"
    device.mkdir()
    for folder in (
        f"{device}/d$(touch {marker})",
        f"{device}/d;touch {marker};",
        f"{device}/d`touch {marker}`",
        f"{device}/-oProxyCommand=x",
    ):
        code, _, err = run_cli(
            capsys,
            "deploy",
            bundles["onnx"]["tarball"],
            "--to",
            server.url(folder),
            "--python",
            py,
            *server.ssh_args(),
            *QUICK,
        )
        _one_error(code, err, 2)
        assert "--to's folder" in err and "has the" in err or "starting with '-'" in err, err
    for name in ("d$(touch PWNED)", "d;touch PWNED;"):
        given = _renamed(Path(bundles["onnx"]["bundle"]), tmp_path, name)
        code, _, err = run_cli(
            capsys, "deploy", str(given), "--to", server.url(device), "--python", py, *server.ssh_args(), *QUICK
        )
        _one_error(code, err, 6)
        shutil.rmtree(tmp_path / "renamed")
    for python in (f"python3;touch {marker}", f"$(touch {marker})"):
        code, _, err = run_cli(
            capsys,
            "deploy",
            bundles["onnx"]["tarball"],
            "--to",
            server.url(device),
            "--python",
            python,
            *server.ssh_args(),
            *QUICK,
        )
        _one_error(code, err, 2)
        assert "--python" in err
    assert not marker.exists() and not any(device.iterdir())
    code, _, err = run_cli(
        capsys,
        "deploy",
        bundles["onnx"]["tarball"],
        "--to",
        server.url(device),
        "--python",
        py,
        *server.ssh_args(),
        *QUICK,
    )  # the same device takes an ordinary bundle
    assert code == 0 and (device / "digits-onnx-int8" / "model.onnx").is_file(), err


@pytest.mark.parametrize("url", ["ssh://-oProxyCommand=touch@host/x", "ssh://-x/srv/m"])
def test_an_ssh_host_that_looks_like_an_option_is_refused(bundles, capsys, url):
    code, _, err = run_cli(capsys, "deploy", bundles["onnx"]["tarball"], "--to", url)
    _one_error(code, err, 2)
    assert "is not an SSH address" in err, err


def test_ssh_and_scp_get_double_dash_before_their_positional_arguments(tmp_path, monkeypatch):
    from resnet_deploy.ship import ssh

    seen = []

    def fake_run(cmd, step, limit):
        seen.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    dev = ssh.SshDevice("ssh://pi@10.0.0.7:22/srv/models", [], 5)
    monkeypatch.setattr(dev, "run", fake_run)
    dev.ssh("true", "probe", 5)
    (tmp_path / "b").mkdir()
    dev.copy(tmp_path / "b", "/srv/models/", 5)
    for cmd in seen:
        i = cmd.index("--")
        assert all(not a.startswith("pi@") for a in cmd[:i]) and cmd[i + 1].startswith(("pi@", str(tmp_path))), cmd


# --- local folders ----------------------------------------------------------------------------------


def test_deploy_to_a_relative_folder_runs_the_selftest_there(bundles, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(
        capsys,
        "deploy",
        bundles["onnx"]["tarball"],
        "--to",
        "devices/box",
        "--python",
        str(devices.ensure("onnxruntime")),
        *QUICK,
    )
    assert code == 0, err
    assert (tmp_path / "devices" / "box" / "digits-onnx-int8" / "model.onnx").is_file()


def test_deploy_to_an_empty_folder_name_is_refused(bundles, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, "deploy", bundles["onnx"]["tarball"], "--to", "")
    _one_error(code, err, 2)
    assert "--to is empty" in err and list(tmp_path.iterdir()) == []
