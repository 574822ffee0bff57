"""Signed bundles (OpenSSF model-signing, EC keys made by OpenSSL): what is refused and what is not."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess

import pytest

from tests.support.cli import run_cli

QUICK = ["--warmup-s", "0.2", "--seconds", "0.3"]


def _keypair(folder, name):
    key, pub = folder / f"{name}.key", folder / f"{name}.pub"
    subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key)], check=True)
    subprocess.run(["openssl", "ec", "-in", str(key), "-pubout", "-out", str(pub)], check=True, capture_output=True)
    return key, pub


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    """A signed ONNX int8 digits bundle, made through the CLI, and two key pairs."""
    from resnet_deploy.cli.main import main

    root = tmp_path_factory.mktemp("signed")
    keys = {"ours": _keypair(root, "ours"), "theirs": _keypair(root, "theirs")}
    try:
        main(
            [
                "package",
                "--targets",
                "onnx",
                "--n",
                "60",
                "--sign-key",
                str(keys["ours"][0]),
                "--out",
                str(root),
                "--json",
            ]
        )
    except SystemExit as e:
        assert not e.code, e.code
    bundle = next(p for p in (root / "bundles").iterdir() if p.is_dir())
    return {"bundle": bundle, "tarball": bundle.with_name(bundle.name + ".tar.gz"), "keys": keys, "root": root}


def _copy(signed, tmp_path):
    dest = tmp_path / signed["bundle"].name
    shutil.copytree(signed["bundle"], dest)
    return dest


def test_a_signed_bundle_verifies_as_a_folder_and_as_a_tarball(signed, capsys):
    pub = str(signed["keys"]["ours"][1])
    for path in (signed["bundle"], signed["tarball"]):
        code, out, err = run_cli(capsys, "verify", str(path), "--key", pub)
        assert code == 0 and out.startswith("ok:"), err
    assert (signed["bundle"] / "model.sig").is_file()


def _rewrite_manifests(bundle, changed):
    """What an attacker who knows the format does: fix the file's sha256 in manifest.json and
    manifest.sha256 to match, so that the bundle's own integrity check passes."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"][changed]["sha256"] = hashlib.sha256((bundle / changed).read_bytes()).hexdigest()
    manifest["files"][changed]["bytes"] = (bundle / changed).stat().st_size
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    (bundle / "manifest.sha256").write_text(hashlib.sha256((bundle / "manifest.json").read_bytes()).hexdigest() + "\n")


TAMPERING = {
    "model edited, manifests rewritten to match": lambda b: (
        (b / "model.onnx").write_bytes((b / "model.onnx").read_bytes()[:-1] + b"\0"),
        _rewrite_manifests(b, "model.onnx"),
    ),
    "a file added": lambda b: (b / "extra.py").write_text("print('hi')"),
    "the signature removed": lambda b: (b / "model.sig").unlink(),
    "the signature replaced by another key's": None,  # below: needs the other key
}


@pytest.mark.parametrize("case", list(TAMPERING))
def test_tampered_bundles_are_refused_with_one_line(signed, case, tmp_path, capsys):
    b = _copy(signed, tmp_path)
    if TAMPERING[case] is None:
        from resnet_deploy.ship.signing import sign_bundle

        sign_bundle(b, signed["keys"]["theirs"][0])
    else:
        TAMPERING[case](b)
    code, out, err = run_cli(capsys, "verify", str(b), "--key", str(signed["keys"]["ours"][1]))
    assert code == 6 and err.count("error:") == 1 and "Traceback" not in err, (case, err)
    # and deploy refuses it before anything reaches the device
    dest = tmp_path / "device"
    code, _, err = run_cli(
        capsys, "deploy", str(b), "--to", str(dest), "--verify-key", str(signed["keys"]["ours"][1]), *QUICK
    )
    assert code == 6 and not (dest.exists() and any(dest.iterdir())), (case, err)


def test_deploy_with_the_key_deploys_a_signed_bundle_with_its_signature(signed, tmp_path, capsys):
    code, out, err = run_cli(
        capsys,
        "deploy",
        str(signed["tarball"]),
        "--to",
        str(tmp_path / "device"),
        "--verify-key",
        str(signed["keys"]["ours"][1]),
        *QUICK,
        "--json",
    )
    assert code == 0, err
    assert (tmp_path / "device" / signed["bundle"].name / "model.sig").is_file()
    # this "device" (the test's own Python) has model-signing: its self-test checked the signature too
    assert json.loads(out)["signature"] == {"signed": True, "checked": True, "ok": True}, out


def test_a_device_without_model_signing_still_self_tests_and_says_so(signed, tmp_path, capsys):
    """The x86 device virtualenv has numpy and the runtime only."""
    from tests.support import devices

    py = devices.ensure("onnxruntime")
    code, out, err = run_cli(
        capsys,
        "deploy",
        str(signed["tarball"]),
        "--to",
        str(tmp_path / "device"),
        "--verify-key",
        str(signed["keys"]["ours"][1]),
        "--python",
        str(py),
        *QUICK,
        "--json",
    )
    assert code == 0, err
    assert json.loads(out)["signature"] == {
        "signed": True,
        "checked": False,
        "why": "model-signing is not installed here",
    }, out


def test_unsigned_bundles_and_wrong_keys_are_refused(signed, bundles, tmp_path, capsys):
    code, _, err = run_cli(capsys, "verify", bundles["onnx"]["tarball"], "--key", str(signed["keys"]["ours"][1]))
    assert code == 6 and "is not signed" in err
    code, _, err = run_cli(capsys, "verify", str(signed["bundle"]), "--key", str(signed["keys"]["theirs"][1]))
    assert code == 6 and "another key" in err


def test_verify_without_a_key_checks_the_checksums_and_says_the_origin_was_not(signed, bundles, tmp_path, capsys):
    import shutil

    code, out, err = run_cli(capsys, "verify", bundles["onnx"]["tarball"])
    assert code == 0 and "is intact (" in out and "it is UNSIGNED" in out, err
    code, out, err = run_cli(capsys, "verify", str(signed["tarball"]))
    assert code == 0 and "carries a signature that was NOT checked (pass --key PUB)" in out, err
    changed = tmp_path / "changed"
    shutil.copytree(bundles["onnx"]["bundle"], changed)
    (changed / "reference.npz").write_bytes(b"not the reference")
    code, out, err = run_cli(capsys, "verify", str(changed))
    assert code == 6 and not out and err.count("error:") == 1 and "reference.npz" in err, err


@pytest.mark.parametrize("what", ["a private key as --key", "not a key", "missing"])
def test_key_files_that_are_not_keys_are_one_line(signed, what, tmp_path, capsys):
    key = {
        "a private key as --key": signed["keys"]["ours"][0],
        "not a key": signed["bundle"] / "manifest.json",
        "missing": tmp_path / "nope.pub",
    }[what]
    code, _, err = run_cli(capsys, "verify", str(signed["bundle"]), "--key", str(key))
    assert code == 2 and err.count("error:") == 1 and "openssl" in err, err
    # package checks its key before any work
    code, _, err = run_cli(
        capsys,
        "package",
        "--targets",
        "onnx",
        "--sign-key",
        str(signed["keys"]["ours"][1]),
        "--out",
        str(tmp_path / "o"),
    )
    assert code == 2 and "not a PEM private key" in err and not (tmp_path / "o").exists(), err


def test_over_ssh_and_to_a_fleet_the_device_checks_the_signature_with_the_key_sent(signed, tmp_path, capsys):
    """The public key travels with the bundle (beside it, outside the signed folder); a device
    with model-signing (here: the test's own Python) checks the signature itself. A tampered
    bundle is refused on the host (exit 6) before any device is touched."""
    import sys

    from tests.support import sshd

    if not sshd.available():
        pytest.skip("openssh-server is not installed (.ci/run installs it)")
    (tmp_path / "sshd").mkdir()
    server = sshd.InetdSshd(tmp_path / "sshd")
    pub, name = str(signed["keys"]["ours"][1]), signed["bundle"].name
    ssh = [*server.ssh_args(), "--python", sys.executable, "--verify-key", pub, *QUICK, "--json"]
    inv = tmp_path / "fleet.yml"
    inv.write_text(
        f"all:\n  hosts:\n    board:\n      ansible_host: 127.0.0.1\n      ansible_port: {server.port}\n"
        f"      ansible_user: {server.user}\n      ansible_python_interpreter: {sys.executable}\n"
    )
    try:
        code, out, err = run_cli(capsys, "deploy", str(signed["tarball"]), "--to", server.url(tmp_path / "one"), *ssh)
        assert code == 0 and json.loads(out)["signature"] == {"signed": True, "checked": True, "ok": True}, err + out
        assert (tmp_path / "one" / f"{name}.verify-key.pub").read_bytes() == signed["keys"]["ours"][1].read_bytes()
        code, out, err = run_cli(
            capsys, "deploy", str(signed["tarball"]), "--inventory", str(inv), "--to", str(tmp_path / "fleet"), *ssh
        )
        row = json.loads(out)["hosts"][0]
        assert code == 0 and row["signature"] is True and row["selftest"]["signature"]["ok"] is True, err + out
        tampered = _copy(signed, tmp_path)
        TAMPERING["a file added"](tampered)
        code, _, err = run_cli(
            capsys, "deploy", str(tampered), "--inventory", str(inv), "--to", str(tmp_path / "fleet2"), *ssh
        )
        assert code == 6 and "extra.py" in err and not (tmp_path / "fleet2").exists(), err
    finally:
        server.close()
