"""Files that could run code, exhaust the machine or switch a check off: tarball and image bombs,
absurd sizes, a SavedModel whose graph writes a file, forged bundle manifests and references
(consistent checksum, no signature), baselines with NaN; and user errors that must be found
before TensorFlow loads. Each: the exit code, one `error:` line, no traceback, nothing run and
nothing left behind."""

from __future__ import annotations

import gzip
import io
import json
import math
import shutil
import struct
import subprocess
import sys
import tarfile
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from resnet_deploy.ship import unpack
from resnet_deploy.errors import IntegrityError
from resnet_deploy.portable import integrity
from tests.support import devices
from tests.support.documents import with_field
from tests.support.cli import run_cli

QUICK = ["--warmup-s", "0.1", "--seconds", "0.3"]
REPO = Path(__file__).resolve().parents[2]


def _one_error(code: int, err: str, expected: int) -> None:
    assert code == expected, err
    assert err.count("error:") == 1 and "Traceback" not in err, err


# --- tarball bombs: only what the manifest lists is ever written ----------------------------------


class Zeros(io.RawIOBase):
    """n zero bytes, streamed (a 300 MiB member costs no memory to make)."""

    def __init__(self, n: int) -> None:
        self.left = n

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        k = min(len(b), self.left)
        b[:k] = bytes(k)
        self.left -= k
        return k


def _tar(bundle: Path, dest: Path, extra: list[tuple[str, int]] = ()) -> Path:
    with tarfile.open(dest, "w:gz", compresslevel=1) as tar:
        tar.add(bundle, arcname=bundle.name)
        for name, size in extra:
            info = tarfile.TarInfo(f"{bundle.name}/{name}")
            info.size = size
            tar.addfile(info, io.BufferedReader(Zeros(size)))
    return dest


def _tree(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}


def test_an_unlisted_member_is_never_written(bundles, tmp_path, capsys):
    src = Path(bundles["onnx"]["bundle"])
    bomb = _tar(src, tmp_path / "b.tar.gz", [("huge.bin", 300 << 20)])
    assert bomb.stat().st_size < 5 << 20  # 300 MiB of zeros, a few hundred KB compressed
    bundle = unpack.safe_extract(bomb, tmp_path / "x")
    listed = set(json.loads((src / "manifest.json").read_text())["files"]) | {"manifest.json", "manifest.sha256"}
    assert set(_tree(bundle)) == listed and sum(_tree(tmp_path / "x").values()) < 10 << 20
    code, out, err = run_cli(
        capsys,
        "deploy",
        str(bomb),
        "--to",
        str(tmp_path / "device"),
        "--python",
        str(devices.ensure("onnxruntime")),
        *QUICK,
    )
    assert code == 0, err
    assert not (tmp_path / "device" / src.name / "huge.bin").exists()


def test_a_member_declaring_more_than_the_cap_is_refused_at_its_header(bundles, tmp_path):
    src = Path(bundles["onnx"]["bundle"])
    path = tmp_path / "b.tar.gz"
    info = tarfile.TarInfo(f"{src.name}/bomb.bin")
    info.size = 64 << 30  # declared in its header; its data is not in the file at all
    body = io.BytesIO()
    with tarfile.open(fileobj=body, mode="w") as tar:
        tar.add(src, arcname=src.name)
    path.write_bytes(gzip.compress(info.tobuf() + bytes(512) + body.getvalue()))
    t0 = time.perf_counter()
    with pytest.raises(IntegrityError, match=r"declares more than 4 GiB of files \(member .*bomb.bin"):
        unpack.safe_extract(path, tmp_path / "x")
    assert time.perf_counter() - t0 < 5 and not (tmp_path / "x" / src.name / "bomb.bin").exists()


def test_a_listed_file_larger_in_the_tarball_than_in_its_manifest_is_refused(bundles, tmp_path, capsys):
    src = Path(bundles["onnx"]["bundle"])
    grown = tmp_path / "g" / src.name
    shutil.copytree(src, grown)
    with open(grown / "model.onnx", "ab") as f:
        f.write(bytes(1 << 20))
    path = _tar(grown, tmp_path / "g.tar.gz")
    code, _, err = run_cli(capsys, "deploy", str(path), "--to", str(tmp_path / "device"))
    _one_error(code, err, 6)
    assert f"{str(path)!r}: model.onnx is" in err and "bytes in the tarball but" in err
    assert not (tmp_path / "device").exists()


def test_verify_names_the_tarball_not_our_folders(bundles, tmp_path, capsys):
    src = Path(bundles["onnx"]["bundle"])
    changed = tmp_path / "c" / src.name
    shutil.copytree(src, changed)
    ref = changed / "reference.npz"
    ref.write_bytes(ref.read_bytes()[:-1] + b"\x00")
    path = _tar(changed, tmp_path / "c.tar.gz")
    key = tmp_path / "k.pub"
    subprocess.run(
        ["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(tmp_path / "k")], check=True
    )
    subprocess.run(
        ["openssl", "ec", "-in", str(tmp_path / "k"), "-pubout", "-out", str(key)], check=True, capture_output=True
    )
    code, _, err = run_cli(capsys, "verify", str(path), "--key", str(key))
    _one_error(code, err, 6)
    assert str(path) in err and "rd-verify" not in err and "extracted" not in err, err


# --- images that declare absurd sizes, and requests that cannot fit this machine -------------------


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height (one tiny IDAT): what a decompression bomb looks like."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")
    )


def _cli(*argv: str, timeout: float = 120) -> tuple[int, str, float]:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(REPO / "cli.py"), *argv], capture_output=True, text=True, timeout=timeout, cwd=REPO
    )
    return proc.returncode, proc.stderr, time.perf_counter() - t0


FAST = 3.0  # seconds: the CLI's own start (~0.3 s here) with room for a slow CI machine; TensorFlow takes longer


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    """Every kind of bad file a user might pass, made once."""
    d = tmp_path_factory.mktemp("bad")
    (d / "bomb").mkdir()
    (d / "bomb" / "a.png").write_bytes(_png_header(30000, 30000))  # beyond Pillow's own guard
    (d / "big").mkdir()
    (d / "big" / "a.png").write_bytes(_png_header(10000, 10000))  # within Pillow's guard, beyond ours
    (d / "broken").mkdir()
    (d / "broken" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (d / "notazip.keras").write_text("hello")
    (d / "notes.txt").write_text("hello")
    (d / "nothdf.h5").write_bytes(b"GIF89a")
    (d / "a_file").write_text("x")
    (d / "sm").mkdir()
    (d / "sm" / "saved_model.pb").write_bytes(b"")
    return d


FAST_CASES = [
    (["export", "--calib", "{d}/bomb"], "declares too many pixels (Image size (900000000 pixels)"),
    (["parity", "--data", "{d}/bomb"], "declares too many pixels"),
    (["export", "--calib", "{d}/big"], "declares 10000x10000 pixels (more than 50,000,000)"),
    (["export", "--calib", "{d}/broken"], "cannot be read"),
    (["export", "--model", "{d}/notazip.keras"], "is not a .keras file"),
    (["export", "--model", "{d}/notes.txt"], "unsupported suffix"),
    (["export", "--model", "{d}/nothdf.h5"], "is not an HDF5"),
    (["export", "--model", "{d}/sm"], "is a SavedModel: loading one runs its graph"),
    (["parity", "--model", "keras:ResNet50", "--weights", "{d}/missing.h5"], "does not exist"),
    (["export", "--out", "{d}/a_file"], "is a file; pass a folder"),
    (["export", "--out", "{d}/a_file/sub"], "is a file, not a folder"),
    (["parity", "--report-json", "{d}"], "is a folder; pass a file path"),
    (["export", "--channel-order", "xyz"], "Unrecognized channel order"),
    (["export", "--mean", "1,2"], "--mean has 2 values; pass 1 (every channel) or 3"),
    (["parity", "--std", "1,2,3,4"], "--std has 4 values"),
    (["export", "--resize", "zoom"], "Unrecognized resize"),
    (["export", "--preprocess", "bogus"], "Unrecognized preprocess"),
    (["export", "--model", "resnet50", "--input-size", "100000"], "needs about"),
    (["export", "--model", "resnet50", "--width", "1000000"], "needs about"),
    (["bench", "--mode", "throughput", "--batch", "100000000"], "needs about"),
    (["bench", "--threads", "100000"], "--threads 100000 is more than"),
    (["parity", "--threads", "100000"], "--threads 100000 is more than"),
    (["export", "--model", "keras:ResNet50", "--input-size", "8"], "needs at least 32"),
]


@pytest.mark.parametrize("argv, said", FAST_CASES, ids=[" ".join(a) for a, _ in FAST_CASES])
def test_user_errors_are_found_before_tensorflow_loads(bad, argv, said):
    out = [] if "--out" in argv else ["--out", str(bad / "out")]
    code, err, seconds = _cli(*[a.format(d=bad) for a in argv], *out)
    _one_error(code, err, 2)
    assert said in err and "loading model" not in err, err
    assert seconds < FAST, f"{seconds:.1f} s: {err}"
    assert not (bad / "out").exists()


# --- a SavedModel whose graph writes a file ----------------------------------------------------------


@pytest.fixture(scope="module")
def writing_savedmodel(tmp_path_factory):
    import tensorflow as tf

    d = tmp_path_factory.mktemp("sm")
    marker = d / "WRITTEN"

    class Writer(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 3], tf.float32)])
        def serve(self, x):
            tf.io.write_file(str(marker), "the model's graph ran on the host")
            return {"y": tf.reduce_mean(x, axis=[1, 2])}

    m = Writer()
    tf.saved_model.save(m, str(d / "model"), signatures={"serving_default": m.serve})
    assert not marker.exists()
    return d / "model", marker


@pytest.mark.parametrize("command", ["parity", "export", "bench", "diagnose", "package"])
def test_a_savedmodel_never_runs_without_trust(writing_savedmodel, tmp_path, capsys, command):
    path, marker = writing_savedmodel
    code, _, err = run_cli(capsys, command, "--model", str(path), "--out", str(tmp_path / "out"))
    _one_error(code, err, 2)
    assert "is a SavedModel: loading one runs its graph" in err and "--trust-model" in err
    assert not marker.exists() and not (tmp_path / "out").exists()


# --- forged bundles: consistent checksum, no signature --------------------------------------------


def _forged(bundle: Path, tmp_path: Path, edit_manifest=None, manifest_text=None, arrays=None) -> Path:
    d = tmp_path / "forged" / bundle.name
    shutil.copytree(bundle, d)
    m = json.loads((d / "manifest.json").read_text())
    if arrays is not None:
        np.savez(d / "reference.npz", **arrays)
        m["files"]["reference.npz"] = {
            "sha256": integrity.sha256_file(d / "reference.npz"),
            "bytes": (d / "reference.npz").stat().st_size,
        }
    if edit_manifest is not None:
        edit_manifest(m)
    (d / "manifest.json").write_text(manifest_text(m) if manifest_text else json.dumps(m))
    (d / "manifest.sha256").write_text(f"{integrity.sha256_file(d / 'manifest.json')}  manifest.json\n")
    return d


def _set(path: str, value):
    def edit(m):
        edited = with_field(m, path, value)
        m.clear()
        m.update(edited)

    return edit


MANIFEST_FORGERIES = [
    ("target", KeyError, "target is None, not a name"),
    ("target", "coreml", "target is 'coreml', not one of tflite, onnx, openvino"),
    ("precision", 8, "precision is 8, not a name"),
    ("tolerance", KeyError, "tolerance is None, not an object of limits"),
    ("tolerance", "strict", "tolerance is 'strict', not an object of limits"),
    ("tolerance.cosine_min", "0.99", "tolerance.cosine_min is '0.99', not a finite number or null"),
    ("tolerance.cosine_min", math.inf, "tolerance.cosine_min is inf"),
    ("tolerance", {"cosine_min": None}, "not at least one limit"),
    ("device_profile", "x86-vnni", "device_profile is 'x86-vnni', not an object or null"),
    ("device_profile.vnni", "yes", "device_profile.vnni is 'yes', not bool"),
    ("host", "laptop", "host is 'laptop', not an object or null"),
    ("host.threads", "2", "host.threads is '2', not a whole number"),
    ("host.threads", 0, "host.threads is 0, not a whole number"),
    ("model", "digits", "model is 'digits', not an object with a name"),
    ("model_file", "../etc/passwd", "not a safe relative file name"),
    ("model_file", "selftest.py", "model_file is 'selftest.py'"),  # listed, but not a model: the runtime refuses it
    ("openvino", [], "openvino is [], not an object"),
]


@pytest.mark.parametrize("field, value, said", MANIFEST_FORGERIES, ids=[f"{f}={v!r}" for f, v, _ in MANIFEST_FORGERIES])
def test_the_selftest_checks_every_manifest_field_it_uses(bundles, tmp_path, field, value, said):
    from resnet_deploy.ship.selftest import selftest

    d = _forged(Path(bundles["onnx"]["bundle"]), tmp_path, _set(field, value))
    result, code = selftest(str(d), protocol={"warmup_s": 0.1, "seconds": 0.2})
    if field == "model_file" and value == "selftest.py":
        assert code == 4 and "could not run the model" in result["error"], result
        return
    assert code == 6 and said in result["error"] and not result["ok"], result


def test_a_nan_tolerance_written_bare_is_refused_not_switched_off(bundles, tmp_path):
    from resnet_deploy.ship.selftest import selftest

    d = _forged(Path(bundles["onnx"]["bundle"]), tmp_path, _set("tolerance.cosine_min", float("nan")))
    assert "NaN" in (d / "manifest.json").read_text()  # json.dumps writes a bare NaN: the forger's file
    result, code = selftest(str(d), protocol={"warmup_s": 0.1, "seconds": 0.2})
    assert code == 6 and "tolerance.cosine_min is nan, not a finite number" in result["error"], result


def _reference(bundle: Path) -> dict:
    with np.load(bundle / "reference.npz") as z:
        return {k: z[k] for k in z.files}


REFERENCE_FORGERIES = [
    (lambda r: {k: v for k, v in r.items() if k != "x"}, "reference.npz has no 'x' array"),
    (lambda r: {**r, "x": np.array([object()] * len(r["x"]), dtype=object)}, "reference.npz cannot be read"),
    (
        lambda r: {
            **r,
            "outputs": np.where(np.arange(r["outputs"].size).reshape(r["outputs"].shape) == 3, np.nan, r["outputs"]),
        },
        "'outputs' holds NaN or infinite values",
    ),
    (lambda r: {**r, "x": r["x"].astype("<U3")}, "'x' is <U3"),
    (lambda r: {**r, "labels": r["labels"][:-1]}, "x has 120 samples but outputs 120 and labels"),
    (lambda r: {**r, "outputs": r["outputs"][:0]}, "not a non-empty numeric array"),
]


@pytest.mark.parametrize("forge, said", REFERENCE_FORGERIES, ids=[s for _, s in REFERENCE_FORGERIES])
def test_the_selftest_checks_every_reference_array(bundles, tmp_path, forge, said):
    from resnet_deploy.ship.selftest import selftest

    src = Path(bundles["onnx"]["bundle"])
    d = _forged(src, tmp_path, arrays=forge(_reference(src)))
    result, code = selftest(str(d), protocol={"warmup_s": 0.1, "seconds": 0.2})
    assert code == 6 and said in result["error"], result


@pytest.mark.parametrize(
    "args",
    [
        ["--threads", "0"],
        ["--threads", "-1"],
        ["--threads", "100000"],
        ["--threads", "two"],
        ["--seconds", "inf"],
        ["--seconds", "nan"],
        ["--warmup-s", "-1"],
        ["--seconds", "1e9"],
    ],
)
def test_the_selftest_refuses_arguments_the_host_refuses(bundles, args):
    """Run as the device runs it: the bundle's own selftest.py, its device Python."""
    bundle = Path(bundles["onnx"]["bundle"])
    proc = subprocess.run(
        [str(devices.ensure("onnxruntime")), str(bundle / "selftest.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and proc.stderr.count("error:") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert not proc.stdout


def test_a_forged_manifest_is_refused_by_host_deploy_too(bundles, tmp_path, capsys):
    d = _forged(Path(bundles["onnx"]["bundle"]), tmp_path, _set("tolerance", "strict"))
    code, _, err = run_cli(capsys, "deploy", str(d), "--to", str(tmp_path / "device"))
    _one_error(code, err, 6)
    assert "tolerance is 'strict'" in err and not (tmp_path / "device").exists()


# --- records read back ---------------------------------------------------------------------------


def test_a_gate_baseline_with_nan_is_bad_input_naming_the_file(tmp_path, capsys):
    base = tmp_path / "baseline.json"
    base.write_text(
        '{"kind": "resnet-deploy-gate", "schema_version": 1, "model": "digits", '
        '"entries": {"onnx/int8": {"accuracy": NaN}}}'
    )
    code, _, err = run_cli(capsys, "gate", "--baseline", str(base), "--current", str(base), "--out", str(tmp_path))
    _one_error(code, err, 2)
    assert str(base) in err and "NaN" in err, err


def test_no_json_we_write_holds_a_bare_nan(tmp_path):
    from resnet_deploy.store.fsutil import write_json_atomic
    from resnet_deploy.portable.checks import no_nan

    doc = {"a": float("nan"), "b": [np.float64("nan"), 1.0, {"c": float("inf")}], "d": (float("nan"),)}
    write_json_atomic(tmp_path / "x.json", doc)
    text = (tmp_path / "x.json").read_text()
    assert "NaN" not in text and json.loads(text) == {"a": None, "b": [None, 1.0, {"c": math.inf}], "d": [None]}
    assert json.dumps(no_nan({"m": {"cosine": float("nan")}})) == '{"m": {"cosine": null}}'


def test_an_all_zero_reference_gives_minus_infinite_sqnr_without_a_warning():
    import warnings

    from resnet_deploy.portable.metrics import compare

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = compare(np.zeros((2, 3)), np.ones((2, 3)))
    assert m["sqnr_db"] == -math.inf and compare(np.zeros((2, 3)), np.zeros((2, 3)))["sqnr_db"] == math.inf


# --- nothing left in TMPDIR ------------------------------------------------------------------------


def test_onnx_runtime_leaves_nothing_in_tmpdir(bundles, tmp_path):
    tmpdir = tmp_path / "TMPDIR"
    tmpdir.mkdir()
    model = Path(bundles["onnx"]["bundle"]) / "model.onnx"
    code = (
        "import sys; from resnet_deploy.portable.runtimes import ort_session; "
        f"s = ort_session({str(model)!r}, 1); print(s.get_inputs()[0].name)"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        env={**env, "TMPDIR": str(tmpdir)},
    )
    assert proc.returncode == 0, proc.stderr
    assert list(tmpdir.iterdir()) == []  # ONNX Runtime's telemetry session file (.ses) is not written


def test_a_killed_package_leaves_one_folder_that_the_next_run_removes(tmp_path):
    """kill -9 during `package` (TensorFlow has written its autograph modules to TMPDIR by then):
    only the process's own temp folder stays, and the next command removes it."""
    import os
    import signal

    from resnet_deploy.store.fsutil import PRIVATE_TMP

    tmpdir = tmp_path / "TMPDIR"
    tmpdir.mkdir()
    env = {**os.environ, "TMPDIR": str(tmpdir)}
    proc = subprocess.Popen(
        [sys.executable, "cli.py", "package", "--targets", "onnx", "--n", "40", "--out", str(tmp_path / "out")],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not list(tmpdir.rglob("__autograph_generated_file*")):
        assert proc.poll() is None, "package ended before it wrote to TMPDIR"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    left = list(tmpdir.iterdir())
    assert len(left) == 1 and left[0].name.startswith(f"{PRIVATE_TMP}{proc.pid}-"), left
    assert list(left[0].rglob("__autograph_generated_file*"))
    done = subprocess.run(
        [sys.executable, "cli.py", "list"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert list(tmpdir.iterdir()) == []


# --- every file a bundle carries: changed, removed, or one added -----------------------------------


def _bundle_files(bundle: Path) -> list[str]:
    listed = json.loads((bundle / "manifest.json").read_text())["files"]
    return sorted(listed) + ["manifest.json", "manifest.sha256"]


@pytest.fixture(scope="module")
def signed_bundle(bundles, tmp_path_factory):
    from resnet_deploy.ship.signing import sign_bundle

    d = tmp_path_factory.mktemp("signed")
    key, pub = d / "k.key", d / "k.pub"
    subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key)], check=True)
    subprocess.run(["openssl", "ec", "-in", str(key), "-pubout", "-out", str(pub)], check=True, capture_output=True)
    bundle = d / "b" / Path(bundles["onnx"]["bundle"]).name
    shutil.copytree(bundles["onnx"]["bundle"], bundle)
    sign_bundle(bundle, key)
    return bundle, pub


def _damaged(src: Path, tmp_path: Path, name: str, how: str) -> Path:
    d = tmp_path / how / src.name
    shutil.copytree(src, d)
    if how == "changed":
        data = bytearray((d / name).read_bytes())
        data[len(data) // 2] ^= 0x01
        (d / name).write_bytes(bytes(data))
    else:
        (d / name).unlink()
    return d


@pytest.mark.parametrize("how", ["changed", "removed"])
def test_every_bundle_file_is_checked_on_the_device_and_the_host(bundles, tmp_path, capsys, how):
    """The self-test (as the device runs it) and the host each refuse a bundle in which any one
    file was changed or removed (exit 6), naming that file."""
    from resnet_deploy.ship.selftest import selftest

    src = Path(bundles["onnx"]["bundle"])
    names = _bundle_files(src)
    assert {"reference.npz", "selftest.py", "model.onnx", "rd_portable/integrity.py"} <= set(names)
    for name in names:
        d = _damaged(src, tmp_path / name.replace("/", "_"), name, how)
        result, code = selftest(str(d), protocol={"warmup_s": 0.1, "seconds": 0.2})
        assert code == 6 and not result["ok"], (name, result)
        said = result["error"]
        if name.startswith("manifest."):  # the manifest against its checksum
            assert "manifest.json does not match manifest.sha256" in said or f"{name} is missing" in said, said
        else:  # the integrity check itself named it, not some later failure to read it
            assert said.startswith(
                f"{name} sha256" if how == "changed" else f"{name} listed in the manifest is missing"
            ), (name, said)
        code, _, err = run_cli(capsys, "deploy", str(d), "--to", str(tmp_path / "device"))
        _one_error(code, err, 6)
        assert not (tmp_path / "device").exists()


@pytest.mark.parametrize("how", ["changed", "removed", "added"])
def test_the_signature_covers_every_file(signed_bundle, tmp_path, capsys, how):
    """verify --key refuses a signed bundle with any one file changed, removed or added (selftest.py
    and the manifests included), and names the file."""
    bundle, pub = signed_bundle
    code, out, err = run_cli(capsys, "verify", str(bundle), "--key", str(pub))
    assert code == 0, err
    names = ["stray.txt", "rd_portable/extra.py"] if how == "added" else _bundle_files(bundle)
    for name in names:
        if how == "added":
            d = tmp_path / how / name.replace("/", "_") / bundle.name
            shutil.copytree(bundle, d)
            (d / name).write_text("print('not signed')\n")
        else:
            d = _damaged(bundle, tmp_path / name.replace("/", "_"), name, how)
        from resnet_deploy.portable.integrity import signature_status

        with pytest.raises(integrity.BundleError, match="does not match its signature|missing|does not match"):
            signature_status(str(d), str(pub))  # the check itself, on exactly this folder
        if how != "added":  # the host's verify: integrity first, then the signature
            code, _, err = run_cli(capsys, "verify", str(d), "--key", str(pub))
            _one_error(code, err, 6)
            assert name.split("/")[-1] in err or "manifest" in err, (name, err)


def test_a_failed_write_names_the_file_asked_for_not_our_temp_file(tmp_path, monkeypatch):
    import errno
    import os

    from resnet_deploy.store import fsutil
    from resnet_deploy.exits import os_error_line

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device", src)  # the OS names the temp file it renames

    monkeypatch.setattr(fsutil.os, "replace", full)
    with pytest.raises(OSError) as e:
        fsutil.write_json_atomic(tmp_path / "baseline.json", {"a": 1})
    assert e.value.filename == str(tmp_path / "baseline.json") and e.value.errno == errno.ENOSPC
    assert f"could not write '{tmp_path / 'baseline.json'}'" in os_error_line(e.value)
    assert os.listdir(tmp_path) == []  # the temp file is gone too
