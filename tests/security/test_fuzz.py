"""Property-based fuzzing (hypothesis) of every reader of untrusted input: artifact manifests,
bundle manifests, bundle tarballs and folders, .npy/.npz data, saved references, and the parity,
bench and diagnose JSON that `report` reads. Whatever the input, the reader returns a valid
object or raises our own error type (DeployError, or the device's BundleError), never another
exception; and what a result reader accepts, the report renders.

Inputs are random, and also valid documents with one random part replaced or removed, which
reach the checks deep inside (pure random JSON rarely gets past the first key)."""

from __future__ import annotations

import copy
import io
import json
import os
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from resnet_deploy.errors import DeployError
from resnet_deploy.portable import integrity

FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", 300)),
    deadline=None,
    derandomize=not os.environ.get("FUZZ_EXAMPLES"),
    suppress_health_check=[HealthCheck.too_slow],
)

SCALARS = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=True) | st.text(max_size=12)
JSON = st.recursive(
    SCALARS, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=4), max_leaves=12
)

from tests.support.documents import VALID  # noqa: E402


REFUSED = object()


def _outcome(read, errors=(DeployError,)):
    """read(), recorded as an event: the value, or REFUSED when it raised one of our errors."""
    try:
        value = read()
    except errors as e:
        event(f"refused: {type(e).__name__}")
        return REFUSED
    event("accepted")
    return value


@st.composite
def mutated(draw, doc):
    """A deep copy of `doc` with one random value replaced by random JSON, or one key removed."""
    doc = copy.deepcopy(doc)
    node = doc
    while True:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        if not keys:
            return doc
        key = draw(st.sampled_from(keys))
        child = node[key]
        if isinstance(child, (dict, list)) and child and draw(st.booleans()):
            node = child
            continue
        if isinstance(node, dict) and draw(st.booleans()):
            del node[key]
        else:
            node[key] = draw(JSON)
        return doc


def _render(kind: str, data: dict) -> None:
    from resnet_deploy.evaluate.parity import ParityReport
    from resnet_deploy.reporting.markdown import (
        diagnose_markdown,
        latency_markdown,
        parity_markdown,
        profile_markdown,
        throughput_markdown,
    )
    from resnet_deploy.reporting.summary import matrix_section

    {
        "parity": lambda d: parity_markdown(ParityReport.from_dict(d)),
        "bench": latency_markdown,
        "throughput": throughput_markdown,
        "profile": profile_markdown,
        "diagnose": diagnose_markdown,
        "matrix": lambda d: matrix_section(d).markdown(),
    }[kind](data)


@pytest.mark.parametrize("kind", ["parity", "bench", "throughput", "profile", "diagnose", "matrix"])
def test_result_readers_accept_what_renders_and_refuse_the_rest(kind):
    from resnet_deploy.store.workspace import Workspace

    _render(kind, VALID[kind])  # the valid document itself renders

    @FUZZ
    @given(doc=st.just(VALID[kind]) | mutated(VALID[kind]) | JSON)
    def check(doc):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "r.json"
            path.write_text(json.dumps(doc))
            data = _outcome(lambda: Workspace(Path(tmp)).read_result(path, kind))
            if data is REFUSED:
                return
            _render(kind, data)

    check()


@FUZZ
@given(doc=st.just(VALID["manifest"]) | mutated(VALID["manifest"]) | JSON, raw=st.none() | st.binary(max_size=64))
def test_artifact_manifests(doc, raw):
    from resnet_deploy.store.artifact import Artifact

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "manifest.json").write_bytes(raw if raw is not None else json.dumps(doc).encode())
        (Path(tmp) / "model.onnx").write_bytes(b"abc")
        _outcome(lambda: Artifact.load(Path(tmp)).verify())


def _write_bundle(folder: Path, manifest: object, files: dict[str, bytes]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    text = json.dumps(manifest).encode()
    (folder / "manifest.json").write_bytes(text)
    (folder / "manifest.sha256").write_text(f"{integrity.hashlib.sha256(text).hexdigest()}  manifest.json\n")


@FUZZ
@given(doc=st.just(VALID["manifest"]) | mutated(VALID["manifest"]) | JSON)
def test_bundle_manifests_on_the_device_side(doc):
    """integrity.verify_bundle, as the device runs it (a manifest whose checksum matches)."""
    with tempfile.TemporaryDirectory() as tmp:
        _write_bundle(Path(tmp) / "b", doc, {"model.onnx": b"abc"})
        _outcome(lambda: integrity.verify_bundle(str(Path(tmp) / "b")), (integrity.BundleError,))


MEMBER = st.sampled_from(
    [
        "b/model.onnx",
        "b/manifest.json",
        "b/manifest.sha256",
        "../evil",
        "/abs",
        "b/../../x",
        "b",
        "c/other",
        "b/sub/deep",
        "",
    ]
)


@FUZZ
@given(
    members=st.lists(st.tuples(MEMBER, st.sampled_from("fdls"), st.binary(max_size=16)), max_size=5),
    cut=st.none() | st.integers(0, 400),
    raw=st.none() | st.binary(max_size=200),
)
def test_bundle_tarballs(members, cut, raw):
    """Any tarball (links, '..', absolute names, several roots, truncated, not a tarball at all)."""
    from resnet_deploy.ship.unpack import safe_extract

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, kind, data in members:
            info = tarfile.TarInfo(name or "x")
            info.type = {"f": tarfile.REGTYPE, "d": tarfile.DIRTYPE, "l": tarfile.SYMTYPE, "s": tarfile.LNKTYPE}[kind]
            info.linkname = "/etc/passwd" if kind in "ls" else ""
            info.size = len(data) if kind == "f" else 0
            tar.addfile(info, io.BytesIO(data) if kind == "f" else None)
    blob = raw if raw is not None else buf.getvalue()[:cut] if cut is not None else buf.getvalue()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "b.tar.gz"
        path.write_bytes(blob)
        out = _outcome(lambda: safe_extract(path, Path(tmp) / "x"))
        if out is REFUSED:
            return
        assert out.resolve().is_relative_to((Path(tmp) / "x").resolve())
        for p in (Path(tmp) / "x").rglob("*"):
            assert not p.is_symlink(), p


@FUZZ
@given(
    doc=st.just(VALID["manifest"]) | mutated(VALID["manifest"]) | JSON,
    extra=st.sets(st.sampled_from(["stray.txt", "link", "sub/x"])),
    link_model=st.booleans(),
)
def test_bundle_folders_reach_the_device_clean(doc, extra, link_model):
    """open_bundle on a folder: refused, or a copy holding exactly the manifest, its checksum
    and the files the manifest lists (no links, no strays)."""
    from resnet_deploy.ship.unpack import open_bundle

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "b"
        _write_bundle(folder, doc, {"model.onnx": b"abc"})
        secret = Path(tmp) / "secret"
        secret.write_text("host file")
        for name in extra:
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if name == "link":
                target.symlink_to(secret)
            else:
                target.write_text("stray")
        if link_model:
            (folder / "model.onnx").unlink()
            (folder / "model.onnx").symlink_to(secret)
        clean = _outcome(lambda: open_bundle(folder, Path(tmp) / "work"))
        if clean is REFUSED:
            return
        listed = set(json.loads((clean / "manifest.json").read_text())["files"])
        got = {str(p.relative_to(clean)) for p in clean.rglob("*") if p.is_file()}
        assert got == listed | {"manifest.json", "manifest.sha256"}
        assert not any(p.is_symlink() for p in clean.rglob("*"))


ARRAYS = st.tuples(
    st.sampled_from(["uint8", "uint8", "float32", "float64", "int64", "bool", "complex64", "<U3"]),
    st.sampled_from([[4, 8, 8, 3], [4, 8, 8], [2, 5, 6, 3], [4], [3, 8, 8, 1]])
    | st.lists(st.integers(0, 9), min_size=0, max_size=5),
)


def _array(spec, fill) -> np.ndarray:
    dtype, shape = spec
    a = np.full(shape, fill if dtype != "<U3" else "ab")
    with np.errstate(invalid="ignore"):  # NaN/inf cast to an integer dtype on purpose: garbage is the input
        return a.astype(dtype)


@FUZZ
@given(
    x=ARRAYS,
    y=st.none() | ARRAYS,
    fill=st.sampled_from([0, 1, 255, -3, np.nan, np.inf]),
    kind=st.sampled_from(["npz", "npy", "raw"]),
    raw=st.binary(max_size=100),
)
def test_array_data_files(x, y, fill, kind, raw):
    """--calib/--data/--val FILE.npy|.npz: arrays of any dtype and shape, NaN/Inf, or garbage."""
    from resnet_deploy.calibration.dataset import from_spec

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"d.{'npy' if kind == 'npy' else 'npz'}"
        if kind == "raw":
            path.write_bytes(raw)
        elif kind == "npy":
            np.save(path, _array(x, fill))
        else:
            arrays = {"x": _array(x, fill)}
            if y is not None:
                arrays["y"] = _array(y, fill)
            np.savez(path, **arrays)
        got = _outcome(lambda: from_spec(str(path), (None, 8, 8, 3), size=4).arrays())
        if got is REFUSED:
            return
        xs, labels = got
        assert xs.dtype == np.float32 and xs.shape[1:] == (8, 8, 3) and np.isfinite(xs).all()
        assert labels is None or len(labels) == len(xs)


@FUZZ
@given(
    x=ARRAYS,
    out=ARRAYS,
    labels=st.none() | ARRAYS,
    meta=JSON | st.builds(lambda f: {"format": f, "model": "m", "source_sha256": None}, st.sampled_from([1, 2, "x"])),
    fill=st.sampled_from([0, 1, np.nan]),
    raw=st.none() | st.binary(max_size=100),
    whole=st.sampled_from([None, "x", "outputs", "labels", "meta"]),
)
def test_saved_references(x, out, labels, meta, fill, raw, whole):
    """Random arrays, garbage, or a valid reference with one part replaced (whole names which)."""
    from resnet_deploy.evaluate.reference import Reference

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ref.npz"
        if raw is not None:
            path.write_bytes(raw)
        elif whole is not None or labels is None:
            arrays = {
                "x": np.zeros((4, 8, 8, 3), np.float32),
                "outputs": np.eye(4, 10, dtype=np.float32),
                "labels": np.arange(4),
                "meta": np.array(json.dumps({"format": 1, "model": "m", "source_sha256": None})),
            }
            if whole is not None:
                arrays[whole] = (
                    _array({"x": x, "outputs": out, "labels": labels or x}.get(whole, x), fill)
                    if whole != "meta"
                    else np.array(json.dumps(meta))
                )
            np.savez(path, **arrays)
        else:
            arrays = {
                "x": _array(x, fill),
                "outputs": _array(out, fill),
                "meta": np.array(json.dumps(meta)),
                "labels": _array(labels, fill),
            }
            np.savez(path, **arrays)
        ref = _outcome(lambda: Reference.load(path))
        if ref is REFUSED:
            return
        assert len(ref.x) == len(ref.outputs) and np.isfinite(ref.outputs).all()


SELFTEST_MANIFEST = {
    **VALID["manifest"],
    "bundle": "b",
    "model_file": "model.onnx",
    "model": {"name": "m"},
    "tolerance": {"max_abs_rel": 0.1, "cosine_min": 0.99, "sqnr_min_db": 20.0, "top1_min": 0.9, "acc_drop_max": 2.0},
    "device_profile": {"name": "x86-vnni", "arch": "x86_64", "vnni": True},
    "host": {"threads": 2},
    "openvino": {"execution_precision": "f32"},
}


@FUZZ
@given(doc=st.just(SELFTEST_MANIFEST) | mutated(SELFTEST_MANIFEST) | JSON)
def test_the_selftest_manifest_checks(doc):
    """portable.checks.check_manifest, as the device runs it after the checksums match: every
    field it lets through has the type and range the self-test uses."""
    import math

    from resnet_deploy.portable.checks import TARGETS, check_manifest

    m = _outcome(lambda: check_manifest(doc), (integrity.BundleError,)) if isinstance(doc, dict) else REFUSED
    if m is REFUSED:
        return
    assert m["target"] in TARGETS and isinstance(m["precision"], str) and isinstance(m["model"]["name"], str)
    from resnet_deploy.portable.metrics import CHECKS

    limits = [m["tolerance"].get(f) for _, f, _ in CHECKS if m["tolerance"].get(f) is not None]
    assert limits and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in limits)
    assert m.get("device_profile") is None or isinstance(m["device_profile"], dict)
    threads = (m.get("host") or {}).get("threads")
    assert threads is None or (isinstance(threads, int) and threads >= 1)


@FUZZ
@given(
    x=ARRAYS,
    out=ARRAYS,
    labels=st.none() | ARRAYS,
    fill=st.sampled_from([0, 1, np.nan, np.inf]),
    drop=st.sampled_from([None, "x", "outputs"]),
    raw=st.none() | st.binary(max_size=100),
)
def test_the_selftest_reference_reader(x, out, labels, fill, drop, raw):
    """portable.checks.load_reference on any .npz: finite numeric arrays of one length, or BundleError."""
    from resnet_deploy.portable.checks import load_reference

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "reference.npz"
        if raw is not None:
            path.write_bytes(raw)
        else:
            arrays = {"x": _array(x, fill), "outputs": _array(out, fill)}
            if labels is not None:
                arrays["labels"] = _array(labels, fill)
            arrays.pop(drop, None)
            np.savez(path, **arrays)
        got = _outcome(lambda: load_reference(str(path)), (integrity.BundleError,))
        if got is REFUSED:
            return
        xs, ref, lab = got
        assert len(xs) == len(ref) > 0 and ref.dtype.kind == "f" and np.isfinite(ref).all()
        assert lab is None or (lab.ndim == 1 and len(lab) == len(xs) and lab.dtype.kind in "iu")
