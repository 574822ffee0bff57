"""Bad input of every kind, through the CLI as a user types it: each case exits with its code,
prints exactly one `error:` line naming the problem and no traceback, and leaves nothing new in
--out, in the device folder or in TMPDIR. Grouped by kind: filesystem, models, numbers, labels,
bundles, data files, and structured files read back."""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import pytest

from tests.support.cli import run_cli
from tests.support.documents import VALID


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A workspace with the digits model's TFLite int8 artifact and bundle, bad models and bad data."""
    root = tmp_path_factory.mktemp("world")
    ws = root / "ws"
    code = _cli(
        "package", "--model", "digits", "--targets", "tflite", "--precision", "int8", "--n", "50", "--out", str(ws)
    )
    assert code == 0
    _bad_models(root)
    _bad_data(root)
    (root / "a_file").write_text("I am a file")
    return root


def _cli(*argv: str) -> int:
    from cli import main

    try:
        main(list(argv))
    except SystemExit as e:
        return e.code or 0
    return 0


def _bad_models(root: Path) -> None:
    import keras

    def save(name: str, inputs, outputs) -> None:
        keras.Model(inputs, outputs).save(root / name)

    a, b = keras.Input((8, 8, 3)), keras.Input((8, 8, 3))
    save("two_inputs.keras", [a, b], keras.layers.Dense(2)(keras.layers.Flatten()(keras.layers.Add()([a, b]))))
    a = keras.Input((8, 8, 3))
    f = keras.layers.Flatten()(a)
    save("two_outputs.keras", a, [keras.layers.Dense(2)(f), keras.layers.Dense(3)(f)])
    a = keras.Input((None, None, 3))
    save("dynamic.keras", a, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(a)))
    a = keras.Input((64,))
    save("vector.keras", a, keras.layers.Dense(2)(a))
    (root / "garbage.keras").write_bytes(os.urandom(300))
    (root / "text.h5").write_text("not a model")
    (root / "model.onnx").write_bytes(b"onnx?")
    (root / "empty_dir").mkdir()
    keras.backend.clear_session()


def _bad_data(root: Path) -> None:
    from resnet_deploy.calibration.sources import load_digits_split

    x, y = load_digits_split("test")
    x, y = x[:40], y[:40].copy()
    np.savez(root / "labels_too_big.npz", x=x, y=np.where(y == 3, 10, y))
    np.savez(root / "labels_negative.npz", x=x, y=np.where(y == 3, -1, y))
    np.savez(root / "labels_fractional.npz", x=x, y=y + 0.5)
    np.savez(root / "labels_2d.npz", x=x, y=y[:, None])
    np.savez(root / "labels_count.npz", x=x, y=y[:10])
    np.savez(root / "no_x.npz", images_are_here=x)
    np.savez(root / "nan.npz", x=np.full((4, 32, 32, 3), np.nan, np.float32))
    np.savez(root / "wrong_float_shape.npz", x=np.zeros((4, 5, 5, 3), np.float32))
    (root / "text.npy").write_text("1,2,3\n")
    (root / "empty_folder").mkdir()
    (root / "broken_images" / "0").mkdir(parents=True)
    (root / "broken_images" / "0" / "a.png").write_bytes(b"\x89PNG not really")


def _bundle(world: Path) -> Path:
    return world / "ws" / "bundles" / "digits-tflite-int8"


def _tarball(world: Path) -> Path:
    return world / "ws" / "bundles" / "digits-tflite-int8.tar.gz"


def _copy_bundle(world: Path, tmp: Path) -> Path:
    dst = tmp / "bundle" / _bundle(world).name
    shutil.copytree(_bundle(world), dst, symlinks=True)
    return dst


def _tar_with(tmp: Path, members: list[tuple[str, bytes]]) -> Path:
    path = tmp / "evil.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, __import__("io").BytesIO(data))
    return path


def _linked_model(world: Path, tmp: Path) -> Path:
    b = _copy_bundle(world, tmp)
    (b / "model.tflite").unlink()
    (b / "model.tflite").symlink_to("/etc/hostname")
    return b


def _linked_manifest(world: Path, tmp: Path) -> Path:
    b = _copy_bundle(world, tmp)
    real = tmp / "elsewhere.json"
    shutil.move(b / "manifest.json", real)
    (b / "manifest.json").symlink_to(real)
    return b


def _tampered(world: Path, tmp: Path) -> Path:
    b = _copy_bundle(world, tmp)
    data = bytearray((b / "model.tflite").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (b / "model.tflite").write_bytes(bytes(data))
    return b


def _truncated(world: Path, tmp: Path) -> Path:
    p = tmp / "cut.tar.gz"
    p.write_bytes(_tarball(world).read_bytes()[:2000])
    return p


def _text_file(world: Path, tmp: Path) -> Path:
    p = tmp / "notes.tar.gz"
    p.write_text("hello")
    return p


def _empty_file(world: Path, tmp: Path) -> Path:
    p = tmp / "empty.tar.gz"
    p.write_bytes(b"")
    return p


def _ws_copy(world: Path, tmp: Path) -> Path:
    dst = tmp / "wscopy"
    shutil.copytree(world / "ws", dst)
    return dst


def _broken_json(world: Path, tmp: Path, name: str, text: str) -> Path:
    ws = _ws_copy(world, tmp)
    (ws / "digits" / name).write_text(text)
    return ws


def _broken_manifest(world: Path, tmp: Path) -> Path:
    ws = _ws_copy(world, tmp)
    (ws / "digits" / "tflite" / "int8" / "manifest.json").write_text("{not json")
    return ws


# (id, argv with {W}=the world folder, {T}=this case's temp folder, {B}=a prepared path, expected exit, message)
# {B} is made by the case's builder from (world, temp).
D = ["--model", "digits"]
CASES = [
    # 1. the filesystem
    ("export-out-is-a-file", ["export", *D, "--out", "{W}/a_file"], None, 2, "a_file' is a file; pass a folder"),
    ("export-out-under-a-file", ["export", *D, "--out", "{W}/a_file/sub"], None, 2, "a_file/sub"),
    (
        "parity-save-reference-under-a-file",
        ["parity", *D, "--targets", "tflite", "--n", "20", "--out", "{W}/ws", "--save-reference", "{W}/a_file/ref.npz"],
        None,
        2,
        "a_file' is a file, not a folder",
    ),
    (
        "parity-report-json-under-a-file",
        ["parity", *D, "--targets", "tflite", "--n", "20", "--out", "{W}/ws", "--report-json", "{W}/a_file/p.json"],
        None,
        2,
        "a_file' is a file, not a folder",
    ),
    (
        "package-out-is-a-file",
        ["package", *D, "--targets", "tflite", "--n", "20", "--out", "{W}/a_file"],
        None,
        2,
        "a_file",
    ),
    ("bench-out-is-a-file", ["bench", *D, "--targets", "tflite", "--out", "{W}/a_file"], None, 2, "a_file"),
    ("diagnose-out-is-a-file", ["diagnose", *D, "--targets", "tflite", "--out", "{W}/a_file"], None, 2, "a_file"),
    (
        "report-dest-under-a-file",
        ["report", *D, "--out", "{B}", "--dest", "{W}/a_file/r"],
        lambda w, t: _broken_json(w, t, "bench.json", json.dumps({**VALID["bench"], "model": "digits"})),
        2,
        "a_file",
    ),
    ("deploy-to-a-file", ["deploy", "{W}/ws/bundles/digits-tflite-int8", "--to", "{W}/a_file"], None, 2, "a_file"),
    # 2. models
    ("model-missing", ["export", "--model", "{W}/missing.keras", "--out", "{T}/o"], None, 2, "missing.keras"),
    ("model-not-a-zip", ["export", "--model", "{W}/garbage.keras", "--out", "{T}/o"], None, 2, "not a .keras file"),
    ("model-text-h5", ["export", "--model", "{W}/text.h5", "--out", "{T}/o"], None, 2, "is not an HDF5 (.h5) file"),
    ("model-wrong-suffix", ["export", "--model", "{W}/model.onnx", "--out", "{T}/o"], None, 2, "unsupported suffix"),
    ("model-dir-not-savedmodel", ["export", "--model", "{W}/empty_dir", "--out", "{T}/o"], None, 2, "not a SavedModel"),
    ("model-unknown-builtin", ["export", "--model", "resnet9000", "--out", "{T}/o"], None, 2, "resnet9000"),
    (
        "model-two-inputs",
        ["export", "--model", "{W}/two_inputs.keras", "--precision", "fp32", "--out", "{T}/o"],
        None,
        2,
        "has 2 inputs",
    ),
    (
        "model-two-outputs",
        ["export", "--model", "{W}/two_outputs.keras", "--precision", "fp32", "--out", "{T}/o"],
        None,
        2,
        "has 2 outputs",
    ),
    (
        "model-vector",
        ["export", "--model", "{W}/vector.keras", "--precision", "fp16", "--out", "{T}/o"],
        None,
        2,
        "not an image",
    ),
    *[
        (
            f"model-dynamic-{cmd[0]}-{i}",
            [*cmd, "--model", "{W}/dynamic.keras", "--out", "{T}/o"],
            None,
            2,
            "dynamic input size",
        )
        for i, cmd in enumerate(
            [
                ["export", "--precision", "fp32"],
                ["export", "--precision", "int8"],
                ["export", "--target", "onnx", "--precision", "fp16"],
                ["parity", "--data", "digits"],
                ["bench"],
                ["package", "--data", "digits"],
                ["diagnose", "--data", "digits"],
            ]
        )
    ],
    (
        "model-weights-missing",
        ["export", "--model", "keras:ResNet50", "--weights", "{W}/none.h5", "--out", "{T}/o"],
        None,
        2,
        "none.h5",
    ),
    # 3. numbers
    ("parity-threads-0", ["parity", *D, "--threads", "0", "--out", "{T}/o"], None, 2, "--threads"),
    ("bench-threads-negative", ["bench", *D, "--threads", "-1", "--out", "{T}/o"], None, 2, "--threads"),
    ("parity-n-0", ["parity", *D, "--n", "0", "--out", "{T}/o"], None, 2, "--n"),
    ("package-n-negative", ["package", *D, "--n", "-5", "--out", "{T}/o"], None, 2, "--n"),
    ("calib-size-0", ["export", *D, "--calib-size", "0", "--out", "{T}/o"], None, 2, "--calib-size"),
    (
        "seed-negative",
        ["export", "--model", "resnet18", "--calib", "synthetic", "--seed", "-1", "--out", "{T}/o"],
        None,
        2,
        "--seed -1 must be a whole number >= 0",
    ),
    ("seconds-0", ["bench", *D, "--seconds", "0", "--out", "{T}/o"], None, 2, "--seconds"),
    ("seconds-nan", ["bench", *D, "--seconds", "nan", "--out", "{T}/o"], None, 2, "--seconds"),
    ("seconds-inf", ["bench", *D, "--seconds", "inf", "--out", "{T}/o"], None, 2, "--seconds"),
    ("warmup-negative", ["bench", *D, "--warmup-s", "-1", "--out", "{T}/o"], None, 2, "--warmup-s"),
    ("tol-nan", ["parity", *D, "--tol", "int8.cosine_min=nan", "--out", "{T}/o"], None, 2, "int8.cosine_min"),
    ("tol-unknown-field", ["parity", *D, "--tol", "int8.nosuch=1", "--out", "{T}/o"], None, 2, "nosuch"),
    ("tol-garbage", ["parity", *D, "--tol", "garbage", "--out", "{T}/o"], None, 2, "garbage"),
    ("input-size-0", ["export", "--model", "resnet18", "--input-size", "0", "--out", "{T}/o"], None, 2, "--input-size"),
    ("classes-0", ["export", "--model", "resnet18", "--classes", "0", "--out", "{T}/o"], None, 2, "--classes"),
    ("width-0", ["export", "--model", "resnet18", "--width", "0", "--out", "{T}/o"], None, 2, "--width"),
    ("batch-0", ["bench", *D, "--batch", "0", "--out", "{T}/o"], None, 2, "--batch"),
    (
        "connect-timeout-0",
        ["deploy", "{W}/ws/bundles/digits-tflite-int8", "--to", "ssh://u@h:22/x", "--connect-timeout", "0"],
        None,
        2,
        "--connect-timeout",
    ),
    ("sqnr-limit-nan", ["diagnose", *D, "--sqnr-limit", "nan", "--out", "{T}/o"], None, 2, "--sqnr-limit"),
    ("opset-too-old", ["export", *D, "--target", "onnx", "--opset", "3", "--out", "{T}/o"], None, 2, "opset"),
    ("scale-nan", ["export", *D, "--scale", "nan", "--out", "{T}/o"], None, 2, "--scale"),
    ("std-zero", ["export", *D, "--std", "0,0,0", "--out", "{T}/o"], None, 2, "--std"),
    ("mean-wrong-length", ["export", *D, "--mean", "1,2", "--out", "{T}/o"], None, 2, "--mean"),
    # 4. labels
    (
        "labels-too-big",
        ["parity", *D, "--targets", "tflite", "--data", "{W}/labels_too_big.npz", "--out", "{W}/ws"],
        None,
        2,
        "label 10 is outside 0..9",
    ),
    (
        "labels-negative",
        ["parity", *D, "--targets", "tflite", "--data", "{W}/labels_negative.npz", "--out", "{W}/ws"],
        None,
        2,
        "label -1 is outside 0..9",
    ),
    (
        "labels-fractional",
        ["parity", *D, "--targets", "tflite", "--data", "{W}/labels_fractional.npz", "--out", "{W}/ws"],
        None,
        2,
        "not whole class numbers",
    ),
    (
        "labels-2d",
        ["parity", *D, "--targets", "tflite", "--data", "{W}/labels_2d.npz", "--out", "{W}/ws"],
        None,
        2,
        "one label per image",
    ),
    (
        "labels-count",
        ["parity", *D, "--targets", "tflite", "--data", "{W}/labels_count.npz", "--out", "{W}/ws"],
        None,
        2,
        "one label per image",
    ),
    (
        "package-labels-too-big",
        ["package", *D, "--targets", "tflite", "--data", "{W}/labels_too_big.npz", "--out", "{W}/ws"],
        None,
        2,
        "label 10 is outside",
    ),
    # 5. bundles
    ("bundle-missing", ["deploy", "{W}/nope.tar.gz", "--to", "{T}/dev"], None, 2, "does not exist"),
    ("bundle-truncated", ["deploy", "{B}", "--to", "{T}/dev"], _truncated, 2, "not a whole .tar.gz bundle"),
    ("bundle-not-gzip", ["deploy", "{B}", "--to", "{T}/dev"], _text_file, 2, "not a whole .tar.gz bundle"),
    ("bundle-empty-file", ["deploy", "{B}", "--to", "{T}/dev"], _empty_file, 2, "not a whole .tar.gz bundle"),
    ("bundle-linked-model", ["deploy", "{B}", "--to", "{T}/dev"], _linked_model, 6, "not a plain file"),
    ("bundle-linked-manifest", ["deploy", "{B}", "--to", "{T}/dev"], _linked_manifest, 6, "is a link"),
    ("bundle-tampered", ["deploy", "{B}", "--to", "{T}/dev"], _tampered, 6, "does not match the manifest"),
    (
        "bundle-dotdot",
        ["deploy", "{B}", "--to", "{T}/dev"],
        lambda w, t: _tar_with(t, [("../evil", b"x")]),
        6,
        "outside the target directory",
    ),
    (
        "bundle-two-roots",
        ["deploy", "{B}", "--to", "{T}/dev"],
        lambda w, t: _tar_with(t, [("a/x", b"1"), ("b/y", b"2")]),
        6,
        "exactly one bundle directory",
    ),
    (
        "bundle-collide",
        ["deploy", "{B}", "--to", "{T}/dev"],
        lambda w, t: _tar_with(t, [("a/x", b"1"), ("a/x/y", b"2")]),
        6,
        "manifest.json is missing",
    ),
    ("deploy-bad-scheme", ["deploy", "{W}/ws/bundles/digits-tflite-int8", "--to", "ftp://x/y"], None, 2, "ftp://"),
    # 6. data files
    ("data-missing", ["parity", *D, "--targets", "tflite", "--data", "{W}/nope", "--out", "{W}/ws"], None, 2, "nope"),
    (
        "data-empty-folder",
        ["parity", *D, "--targets", "tflite", "--data", "{W}/empty_folder", "--out", "{W}/ws"],
        None,
        2,
        "empty_folder",
    ),
    (
        "data-no-x",
        ["parity", *D, "--targets", "tflite", "--data", "{W}/no_x.npz", "--out", "{W}/ws"],
        None,
        2,
        "no 'x'",
    ),
    (
        "data-text-npy",
        ["parity", *D, "--targets", "tflite", "--data", "{W}/text.npy", "--out", "{W}/ws"],
        None,
        2,
        "not in numpy's array format",
    ),
    ("data-nan", ["parity", *D, "--targets", "tflite", "--data", "{W}/nan.npz", "--out", "{W}/ws"], None, 2, "NaN"),
    (
        "data-wrong-float-shape",
        ["parity", *D, "--targets", "tflite", "--data", "{W}/wrong_float_shape.npz", "--out", "{W}/ws"],
        None,
        2,
        "wrong_float_shape.npz",
    ),
    ("calib-broken-images", ["export", *D, "--calib", "{W}/broken_images", "--out", "{T}/o"], None, 2, "a.png"),
    # 7. structured files read back
    (
        "report-parity-wrong-shape",
        ["report", *D, "--out", "{B}"],
        lambda w, t: _broken_json(w, t, "parity.json", '{"model": "digits", "samples": 1, "results": [1]}'),
        2,
        "is not a resnet-deploy parity",
    ),
    (
        "report-bench-not-json",
        ["report", *D, "--out", "{B}"],
        lambda w, t: _broken_json(w, t, "bench.json", "{oops"),
        2,
        "is not valid JSON",
    ),
    (
        "report-diagnose-wrong-shape",
        ["report", *D, "--out", "{B}"],
        lambda w, t: _broken_json(w, t, "diagnose.json", '{"model": "digits"}'),
        2,
        "is not a resnet-deploy diagnose",
    ),
    (
        "parity-corrupt-reference",
        ["parity", "--reference", "{W}/text.h5", "--targets", "tflite", "--out", "{W}/ws"],
        None,
        2,
        "is not a resnet-deploy reference",
    ),
    (
        "parity-corrupt-manifest",
        ["parity", *D, "--targets", "tflite", "--precision", "int8", "--n", "20", "--out", "{B}"],
        _broken_manifest,
        6,
        "is not valid JSON",
    ),
]


def _tree(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")} if path.is_dir() else set()


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_leaves_nothing(case, world, tmp_path, capsys, monkeypatch):
    name, argv, build, code, message = case
    tmpdir = tmp_path / "TMPDIR"
    tmpdir.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmpdir))
    monkeypatch.setattr(tempfile, "tempdir", str(tmpdir))
    built = build(world, tmp_path) if build else None
    argv = [a.replace("{W}", str(world)).replace("{T}", str(tmp_path)).replace("{B}", str(built)) for a in argv]
    watched = [world, tmp_path]
    before = {str(w): _tree(w) for w in watched}
    capsys.readouterr()
    got, out, err = run_cli(capsys, *argv)
    assert got == code, (name, err)
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], (name, err)
    assert "Traceback" not in err + out
    assert not list(tmpdir.iterdir()), f"{name} left {list(tmpdir.iterdir())} in TMPDIR"
    for w in watched:
        new = _tree(w) - before[str(w)]
        assert not new, f"{name} left {sorted(new)[:5]} in {w}"


REPO = Path(__file__).resolve().parents[2]


def test_a_killed_export_leaves_nothing_that_the_next_run_does_not_clean(tmp_path):
    """kill -9 in the middle of a real export (ORT's quantizer writing its temporary models):
    the staging folder stays behind (nothing can run after SIGKILL), TMPDIR stays empty (the
    converters' temp files live inside staging), and the next run removes the dead process's
    staging and publishes a whole artifact."""
    import signal
    import subprocess
    import sys
    import time

    out, tmpdir = tmp_path / "out", tmp_path / "TMPDIR"
    tmpdir.mkdir()
    cmd = [
        sys.executable,
        "cli.py",
        "export",
        "--model",
        "resnet18",
        "--input-size",
        "32",
        "--classes",
        "10",
        "--width",
        "16",
        "--target",
        "onnx",
        "--precision",
        "int8",
        "--calib-size",
        "60",
        "--out",
        str(out),
    ]
    env = {**os.environ, "TMPDIR": str(tmpdir)}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not any(p.is_dir() for p in out.glob("resnet18/onnx/.int8.partial-*/.tmp/*")):
        assert proc.poll() is None, "the export ended before it could be killed"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stale = list(out.glob("resnet18/onnx/.int8.partial-*"))
    assert stale, "killed before staging: the test did not kill mid-export"
    from resnet_deploy.store.fsutil import PRIVATE_TMP

    # the killed process's own temp folder is all it left in TMPDIR (the converters' files are in staging)
    assert [p.name.split("-")[2] for p in tmpdir.iterdir()] == [str(proc.pid)], list(tmpdir.iterdir())
    assert all(p.name.startswith(PRIVATE_TMP) for p in tmpdir.iterdir())
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert not [p for p in out.rglob("*") if ".partial-" in p.name or ".old-" in p.name]
    assert not list(tmpdir.iterdir())
    from resnet_deploy.store.artifact import Artifact

    Artifact.load(out / "resnet18" / "onnx" / "int8").verify()


def _publish_many(args: tuple[str, int]) -> int:
    from resnet_deploy.store.fsutil import publish_dir, staging_dir

    final, tag = Path(args[0]), args[1]
    for i in range(40):
        with staging_dir(final) as staging:
            (staging / "a").write_text(f"{tag}-{i}")
            (staging / "b").write_text(f"{tag}-{i}")
            publish_dir(staging, final)
    return tag


def test_publishing_the_same_folder_from_two_processes_at_once(tmp_path):
    """The last publisher wins, none fails, the folder is always whole (its two files agree)
    and no staging or old folder is left."""
    import multiprocessing

    final = tmp_path / "artifact"
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        assert sorted(pool.map(_publish_many, [(str(final), 1), (str(final), 2)])) == [1, 2]
    assert (final / "a").read_text() == (final / "b").read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["artifact"]


def test_stale_staging_of_a_dead_process_is_removed_but_a_live_ones_is_not(tmp_path):
    import subprocess
    import sys

    from resnet_deploy.store.fsutil import staging_dir

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / f".int8.partial-{dead_pid}-abc").mkdir()
        (tmp_path / f".int8.partial-{live.pid}-abc").mkdir()
        with staging_dir(tmp_path / "int8"):
            pass
        left = sorted(p.name for p in tmp_path.iterdir())
        assert left == [f".int8.partial-{live.pid}-abc"]
    finally:
        live.kill()


def test_more_samples_than_the_data_has_is_said_not_silently_clamped(world, capsys):
    from resnet_deploy.calibration.sources import load_digits_split

    x, y = load_digits_split("test")
    np.savez(world / "small.npz", x=x[:30], y=y[:30])
    code, out, err = run_cli(
        capsys,
        "parity",
        *D,
        "--targets",
        "tflite",
        "--data",
        str(world / "small.npz"),
        "--n",
        "1000",
        "--out",
        str(world / "ws"),
    )
    assert code == 0, err
    assert "the data has 30 samples, 1000 were asked for; using 30" in " ".join((out + err).split())


def test_class_folders_are_numbered_in_natural_order_and_the_mapping_is_recorded(tmp_path):
    """ "10" after "2" (string order put it first and shifted every label)."""
    from PIL import Image

    from resnet_deploy.calibration.dataset import from_spec

    for cls in ("10", "2", "1"):
        (tmp_path / cls).mkdir()
        Image.fromarray(np.full((8, 8, 3), int(cls), np.uint8)).save(tmp_path / cls / "a.png")
    ds = from_spec(str(tmp_path), (None, 8, 8, 3), size=10)
    x, labels = ds.arrays()
    assert ds.describe()["source"]["classes"] == ["1", "2", "10"]
    by_pixel = {int(round(float(xi[0, 0, 0]) * 255)): int(li) for xi, li in zip(x, labels)}
    assert by_pixel == {1: 0, 2: 1, 10: 2}


@pytest.fixture
def small_disk(tmpfs):
    return tmpfs("small", "256k")


@pytest.mark.parametrize(
    "argv",
    [
        ["export", *D, "--target", "all", "--out", "{S}"],
        ["package", *D, "--targets", "tflite", "--n", "50", "--out", "{S}"],
        ["parity", *D, "--targets", "tflite", "--n", "50", "--out", "{W}/ws", "--save-reference", "{S}/ref.npz"],
        ["parity", *D, "--targets", "tflite", "--n", "50", "--out", "{W}/ws", "--report-json", "{S}/p.json"],
    ],
    ids=["export", "package", "save-reference", "report-json"],
)
def test_a_full_disk_is_exit_7_and_leaves_nothing(argv, world, small_disk, capsys):
    free = shutil.disk_usage(small_disk).free
    (small_disk / "filler").write_bytes(b"x" * (free - 2048))  # what is left is too little for any file we write
    argv = [a.replace("{S}", str(small_disk)).replace("{W}", str(world)) for a in argv]
    code, out, err = run_cli(capsys, *argv)
    assert code == 7, err
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "the disk is full" in errors[0] and "Traceback" not in err
    assert sorted(p.name for p in small_disk.rglob("*") if p.is_file()) == ["filler"]
