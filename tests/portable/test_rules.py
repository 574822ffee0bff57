"""The decisions that keep untrusted input out and wrong devices refused, as fast unit tests (no
backend, no TensorFlow; benchmarks/mutation.py scores them): the device-profile rule, the safe
character set, the self-test's manifest and reference checks, the machine limits, and the
gate's comparison."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from resnet_deploy.portable import checks, device, limits, names
from resnet_deploy.portable.integrity import BundleError
from tests.support.documents import with_field

# --- the device profile ---------------------------------------------------------------------------

X86 = {"arch": "x86_64", "vnni": True, "flags_known": True}
VNNI_PROFILE = {"name": "x86-vnni", "arch": "x86_64", "vnni": True}
AVX2_PROFILE = {"name": "x86-avx2", "arch": "x86_64", "vnni": False}
ARM_PROFILE = {"name": "arm64", "arch": "aarch64", "vnni": False}


def _cpuinfo(tmp_path, text):
    p = tmp_path / "cpuinfo"
    p.write_text(text)
    return p


def test_cpu_flags_read_x86_flags_and_arm_features(tmp_path, monkeypatch):
    monkeypatch.delenv(device.CPUINFO_ENV, raising=False)
    x86 = _cpuinfo(tmp_path, "processor\t: 0\nflags\t\t: sse2 avx512_vnni avx2 sse2\nbugs\t: x\n")
    assert device.cpu_flags(str(x86)) == ["avx2", "avx512_vnni", "sse2"]
    (tmp_path / "arm").mkdir()
    arm = _cpuinfo(tmp_path / "arm", "Features\t: fp asimd asimddp\n")
    assert device.cpu_flags(str(arm)) == ["asimd", "asimddp", "fp"]
    assert device.cpu_flags(str(tmp_path / "missing")) == []
    monkeypatch.setenv(device.CPUINFO_ENV, str(x86))
    assert device.cpu_flags() == ["avx2", "avx512_vnni", "sse2"]  # another CPU's facts, by the one probe
    assert device.facts()["vnni"] is True and device.facts()["cpuinfo"] == str(x86)


@pytest.mark.parametrize(
    "flags, vnni",
    [("avx2 avx512_vnni", True), ("avx2 avx_vnni", True), ("amx_int8", True), ("avx2 fma", False), ("", None)],
)
def test_facts_say_vnni_from_the_flags_and_unknown_without_them(tmp_path, monkeypatch, flags, vnni):
    monkeypatch.setenv(device.CPUINFO_ENV, str(_cpuinfo(tmp_path, f"flags\t: {flags}\n" if flags else "x\n")))
    f = device.facts()
    assert f["vnni"] is vnni and f["flags_known"] is bool(flags)


@pytest.mark.parametrize(
    "profile, dev, refused",
    [
        (None, X86, None),
        ({}, X86, None),
        (VNNI_PROFILE, X86, None),
        (VNNI_PROFILE, {**X86, "vnni": False}, "needs VNNI"),
        (VNNI_PROFILE, {**X86, "vnni": None}, None),  # flags unknown: not refused on a guess
        (AVX2_PROFILE, X86, None),  # an avx2 bundle fits a VNNI CPU by design
        (AVX2_PROFILE, {**X86, "vnni": False}, None),
        (ARM_PROFILE, X86, "built for arm64 (aarch64) but this device is x86_64"),
        (
            {"name": "x86-vnni", "arch": "x86_64", "vnni": True},
            {"arch": "aarch64", "vnni": False},
            "but this device is aarch64",
        ),
    ],
)
def test_the_profile_rule(profile, dev, refused):
    why = device.mismatch(profile, dev)
    assert (why is None) if refused is None else (refused in why), why


def test_check_profile_raises_unless_allowed_and_reports_either_way():
    fits = device.check_profile(AVX2_PROFILE, device=X86)
    assert fits == {"profile": "x86-avx2", "device": X86, "fits": True, "why": None, "allowed": False}
    no_vnni = {**X86, "vnni": False}
    with pytest.raises(device.ProfileMismatch) as e:
        device.check_profile(VNNI_PROFILE, device=no_vnni)
    assert e.value.exit_code == 8 and "--allow-profile-mismatch" in str(e.value)
    assert e.value.result["fits"] is False and e.value.result["allowed"] is False
    allowed = device.check_profile(VNNI_PROFILE, True, device=no_vnni)
    assert allowed["fits"] is False and allowed["allowed"] is True and "VNNI" in allowed["why"]
    assert device.check_profile(None, True, device=X86)["allowed"] is False  # nothing to allow


@pytest.mark.skipif(
    bool(__import__("os").environ.get("MUTANT_UNDER_TEST")),
    reason="under mutmut the module's source, which the probe ships, is its instrumented copy",
)
def test_the_probe_program_prints_facts_and_refuses_a_profile_on_the_device(tmp_path):
    info = _cpuinfo(tmp_path, "flags\t: avx2 fma\n")
    env = {"PATH": "/usr/bin:/bin", device.CPUINFO_ENV: str(info)}

    def probe(*args):
        program = tmp_path / "probe.py"
        program.write_text(device.probe_program(*args))
        return subprocess.run([sys.executable, str(program)], capture_output=True, text=True, env=env)

    run = probe()
    facts = json.loads(run.stdout)
    assert run.returncode == 0 and facts["vnni"] is False and facts["arch"] and "numpy" in facts["versions"]
    run = probe(VNNI_PROFILE)
    assert run.returncode == 8 and "needs VNNI" in run.stderr
    assert probe(VNNI_PROFILE, True).returncode == 0


# --- the safe character set -------------------------------------------------------------------------

HOSTILE = [
    "x{{ 7*7 }}",
    "m{% if 1 %}",
    "d$(id)",
    "d;id;",
    "d`id`",
    "d x",
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
    "d\tx",
    "d%x",
    "(x)",
    "[x]",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_names_and_paths_are_refused_naming_the_character(text):
    bad = next(c for c in text if c not in names.SAFE_PATH_CHARS)
    with pytest.raises(names.UnsafeName) as e:
        names.check_name(text, "bundle name")
    assert str(e.value).startswith(f"bundle name {text!r} has the character")
    assert f"at position {text.index(bad)}" in str(e.value)
    with pytest.raises(names.UnsafeName):
        names.check_path("/srv/" + text, "--to")


@pytest.mark.parametrize(
    "text, ok",
    [
        ("digits-onnx-int8", True),
        ("a.b_c+d@e,f=g", True),
        ("-x", False),
        ("..", False),
        (".", False),
        ("", False),
        ("a/b", False),
        ("x" * 255, True),
        ("x" * 256, False),
        (None, False),
        (3, False),
    ],
)
def test_names(text, ok):
    if ok:
        assert names.check_name(text, "n") == text
    else:
        with pytest.raises(names.UnsafeName):
            names.check_name(text, "n")


@pytest.mark.parametrize(
    "text, ok",
    [
        ("/home/pi/models", True),
        ("/a/-b", False),
        ("/a/../b", False),
        ("/a/b/", True),
        ("rel/dir", True),
        ("/" + "a" * 4095, True),
        ("/" + "a" * 4096, False),
    ],
)
def test_paths(text, ok):
    if ok:
        assert names.check_path(text, "p") == text
    else:
        with pytest.raises(names.UnsafeName):
            names.check_path(text, "p")


def test_the_message_says_what_to_use():
    with pytest.raises(names.UnsafeName) as e:
        names.check_path("/d$x", "--to's folder")
    assert str(e.value) == (
        "--to's folder '/d$x' has the character '$' at position 2; use only letters, digits and + , - . / = @ _"
    )
    with pytest.raises(names.UnsafeName, match=r"U\+000A at position 1"):
        names.check_name("a\nb", "n")
    with pytest.raises(names.UnsafeName, match=r"U\+0020"):
        names.check_name("a b", "n")


@pytest.mark.parametrize(
    "text, made",
    [
        ("my model (1)", "my_model__1_"),
        ("-x", "_x"),
        (".hidden", "_hidden"),
        ("", "_"),
        ("ok-name", "ok-name"),
        ("é", "_"),
    ],
)
def test_safe_name(text, made):
    assert names.safe_name(text) == made and names.check_name(made, "n") == made


# --- the self-test's manifest and reference checks ----------------------------------------------------

MANIFEST = {
    "target": "onnx",
    "precision": "int8",
    "model_file": "model.onnx",
    "files": {"model.onnx": {}},
    "model": {"name": "m"},
    "tolerance": {"cosine_min": 0.98, "top1_min": None},
    "device_profile": VNNI_PROFILE,
    "host": {"threads": 2},
    "openvino": {"execution_precision": "f32"},
}


def _with(path, value):
    return with_field(MANIFEST, path, value)


def test_a_valid_manifest_passes_and_optional_parts_may_be_missing():
    assert checks.check_manifest(MANIFEST) is MANIFEST
    for optional in ("device_profile", "host", "openvino"):
        checks.check_manifest(_with(optional, KeyError))
    checks.check_manifest(_with("device_profile", None))
    checks.check_manifest(_with("host.threads", None))
    checks.check_manifest(_with("tolerance.cosine_min", 1))  # an int is a number
    checks.check_manifest(_with("host.threads", checks.MAX_THREADS_IN_MANIFEST))


@pytest.mark.parametrize(
    "path, value, said",
    [
        ("target", KeyError, "target is None, not a name"),
        ("target", "", "target is '', not a name"),
        ("target", "trt", "target is 'trt', not one of tflite, onnx, openvino"),
        ("precision", None, "precision is None"),
        ("model_file", "../x", "not a safe relative file name"),
        ("model_file", "other.onnx", "model_file is 'other.onnx', not a file the manifest lists"),
        ("files", None, "model_file is 'model.onnx', not a file the manifest lists"),
        ("model", {"name": 3}, "model is {'name': 3}"),
        ("model", None, "model is None"),
        ("openvino", {"execution_precision": 16}, "openvino is"),
        ("openvino", "f32", "openvino is 'f32'"),
        ("tolerance", [], "tolerance is [], not an object of limits"),
        ("tolerance.cosine_min", True, "tolerance.cosine_min is True"),
        ("tolerance.cosine_min", "0.9", "tolerance.cosine_min is '0.9'"),
        ("tolerance.cosine_min", math.nan, "tolerance.cosine_min is nan"),
        ("tolerance.cosine_min", -math.inf, "tolerance.cosine_min is -inf"),
        ("tolerance", {"top1_min": None}, "not at least one limit"),
        ("tolerance", {"why": 1}, "not at least one limit"),
        ("device_profile", "x86", "device_profile is 'x86', not an object or null"),
        ("device_profile.name", 1, "device_profile.name is 1, not str"),
        ("device_profile.arch", [], "device_profile.arch is [], not str"),
        ("device_profile.vnni", 1, "device_profile.vnni is 1, not bool"),
        ("host", [], "host is [], not an object or null"),
        ("host.threads", 0, "host.threads is 0"),
        ("host.threads", True, "host.threads is True"),
        ("host.threads", 2.0, "host.threads is 2.0"),
        ("host.threads", checks.MAX_THREADS_IN_MANIFEST + 1, "host.threads is 4097"),
    ],
)
def test_every_bad_field_is_a_bundle_error_naming_it(path, value, said):
    with pytest.raises(BundleError) as e:
        checks.check_manifest(_with(path, value))
    assert said in str(e.value) and str(e.value).startswith("manifest.json: ") and e.value.exit_code == 6
    assert str(e.value).endswith("re-run `package`.")


def test_a_manifest_that_is_not_an_object():
    with pytest.raises(BundleError, match="the document is"):
        checks.check_manifest([MANIFEST])


def test_long_values_are_shortened_in_the_message():
    with pytest.raises(BundleError) as e:
        checks.check_manifest(_with("target", "x" * 200))
    assert "'" + "x" * 56 + "..." in str(e.value) and "x" * 57 not in str(e.value)


def _npz(tmp_path, **arrays):
    p = tmp_path / "reference.npz"
    np.savez(p, **arrays)
    return str(p)


def test_a_valid_reference_loads(tmp_path):
    x, ref, labels = checks.load_reference(
        _npz(tmp_path, x=np.zeros((3, 2), np.uint8), outputs=np.ones((3, 4)), labels=np.arange(3))
    )
    assert x.shape == (3, 2) and ref.shape == (3, 4) and list(labels) == [0, 1, 2]
    assert checks.load_reference(_npz(tmp_path, x=np.zeros((1,), bool), outputs=np.ones((1,))))[2] is None


@pytest.mark.parametrize(
    "arrays, said",
    [
        ({"outputs": np.ones((3, 4))}, "has no 'x' array"),
        ({"x": np.zeros((3, 2))}, "has no 'outputs' array"),
        ({"x": np.array(["a", "b"]), "outputs": np.ones((2, 4))}, "'x' is <U1"),
        ({"x": np.zeros((2, 2)), "outputs": np.ones((2, 4), np.int64)}, "'outputs' is int64"),
        ({"x": np.zeros(()), "outputs": np.ones((2, 4))}, "'x' is float64 of shape ()"),
        ({"x": np.zeros((0, 2)), "outputs": np.ones((0, 4))}, "not a non-empty numeric array"),
        ({"x": np.full((2, 2), np.nan), "outputs": np.ones((2, 4))}, "'x' holds NaN or infinite values"),
        ({"x": np.zeros((2, 2)), "outputs": np.full((2, 4), np.inf)}, "'outputs' holds NaN or infinite values"),
        ({"x": np.zeros((2, 2)), "outputs": np.ones((3, 4))}, "x has 2 samples but outputs 3"),
        ({"x": np.zeros((2, 2)), "outputs": np.ones((2, 4)), "labels": np.arange(3)}, "and labels (3,)"),
        ({"x": np.zeros((2, 2)), "outputs": np.ones((2, 4)), "labels": np.zeros((2, 1), int)}, "and labels (2, 1)"),
        ({"x": np.zeros((2, 2)), "outputs": np.ones((2, 4)), "labels": np.zeros(2)}, "'labels' is float64"),
    ],
)
def test_every_bad_reference_is_a_bundle_error(tmp_path, arrays, said):
    with pytest.raises(BundleError) as e:
        checks.load_reference(_npz(tmp_path, **arrays))
    assert said in str(e.value) and str(e.value).endswith("re-run `package`.")


def test_a_pickled_or_broken_reference_is_a_bundle_error(tmp_path):
    p = tmp_path / "reference.npz"
    np.savez(p, x=np.array([object()], dtype=object), outputs=np.ones((1, 2)))
    with pytest.raises(BundleError, match="cannot be read"):
        checks.load_reference(str(p))
    p.write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(BundleError, match="cannot be read"):
        checks.load_reference(str(p))


def test_no_nan_replaces_nan_everywhere_and_keeps_the_rest():
    doc = {"a": math.nan, "b": [1.0, math.inf, (math.nan,)], "c": {"d": np.float64("nan"), "e": "NaN"}}
    assert checks.no_nan(doc) == {"a": None, "b": [1.0, math.inf, [None]], "c": {"d": None, "e": "NaN"}}


# --- what this machine can do ---------------------------------------------------------------------------


def test_thread_limits(monkeypatch):
    monkeypatch.setattr(limits, "cpus", lambda: 2)
    assert limits.thread_problem(1) is None and limits.thread_problem(8) is None
    assert limits.thread_problem(0, "--threads") == "--threads 0 must be a whole number >= 1"
    assert limits.thread_problem(9) == (
        "--threads 9 is more than 4 x the 2 CPUs here (at most 8); use the number of cores"
    )
    for bad in (0, -1, True, 1.5, "2", None):
        assert "must be a whole number >= 1" in limits.thread_problem(bad)


def test_seconds_limits():
    assert limits.seconds_problem(0.1, "--seconds") is None and limits.seconds_problem(limits.MAX_SECONDS, "s") is None
    for bad in (0, -1, math.inf, math.nan, True, "1"):
        assert "must be a finite number of seconds > 0" in limits.seconds_problem(bad, "--seconds")
    assert "more than a day" in limits.seconds_problem(limits.MAX_SECONDS + 1, "--seconds")
    assert limits.seconds_problem(math.inf, "--seconds") == "--seconds inf must be a finite number of seconds > 0"
    assert limits.seconds_problem(90000.0, "--seconds") == "--seconds 90000.0 is more than a day (at most 86400)"


def test_memory_limits(tmp_path):
    info = tmp_path / "meminfo"
    info.write_text("MemTotal: 100 kB\nMemAvailable:    2048 kB\n")
    assert limits.available_bytes(str(info)) == 2048 * 1024
    assert limits.available_bytes(str(tmp_path / "missing")) is None
    real = next(ln for ln in open("/proc/meminfo") if ln.startswith("MemAvailable:"))
    assert abs(limits.available_bytes() - int(real.split()[1]) * 1024) < 1 << 30  # /proc/meminfo itself, read now
    import unittest.mock

    with unittest.mock.patch.object(limits, "available_bytes", lambda: 1 << 20):
        assert (
            limits.memory_problem(2 << 20, "x")
            == "x needs about 0.00195 GiB but this machine has 0.000977 GiB available"
        )
        assert limits.memory_problem(1 << 20, "x") is None
    assert limits.memory_problem(1 << 20, "x", available=2 << 20) is None
    assert limits.memory_problem(2 << 20, "x", available=2 << 20) is None
    assert limits.memory_problem(3 << 30, "the model", available=1 << 30) == (
        "the model needs about 3 GiB but this machine has 1 GiB available"
    )


# --- the gate's comparison ---------------------------------------------------------------------------------


def _entry(**kw):
    return {"accuracy": 0.95, "top1_agreement": 0.99, "sqnr_db": 20.0, "latency_ratio": 0.5, "parity_ok": True, **kw}


def _rows(base, cur, limits_=None):
    from resnet_deploy.evaluate.gate import compare

    rows = compare({"entries": {"onnx/int8": base}}, {"entries": {"onnx/int8": cur}}, limits_)
    return {r["metric"]: r for r in rows}


def test_the_gate_compares_each_metric_at_its_limit():
    from resnet_deploy.evaluate.gate import GATE_TOLERANCES

    acc, agree, sqnr, lat = (GATE_TOLERANCES[k][0] for k in ("accuracy", "top1_agreement", "sqnr_db", "latency_ratio"))
    exactly = _rows(
        _entry(),
        _entry(
            accuracy=0.95 - acc / 100,
            top1_agreement=0.99 - agree / 100,
            sqnr_db=20.0 - sqnr,
            latency_ratio=0.5 * (1 + lat / 100),
        ),
    )
    assert all(r["ok"] for r in exactly.values()), exactly  # exactly at every limit: passes
    beyond = _rows(
        _entry(),
        _entry(
            accuracy=0.95 - (acc + 0.01) / 100,
            top1_agreement=0.99 - (agree + 0.01) / 100,
            sqnr_db=20.0 - sqnr - 0.01,
            latency_ratio=0.5 * (1 + (lat + 0.1) / 100),
        ),
    )
    assert not any(r["ok"] for r in beyond.values()), beyond
    assert beyond["accuracy"]["change"] == pytest.approx(-(acc + 0.01))
    assert beyond["latency_ratio"]["change"] == pytest.approx(lat + 0.1)
    assert beyond["sqnr_db"]["limit"] == sqnr and beyond["sqnr_db"]["base"] == 20.0


def test_the_gate_improvements_pass_and_given_limits_apply():
    better = _rows(_entry(), _entry(accuracy=1.0, top1_agreement=1.0, sqnr_db=40.0, latency_ratio=0.1))
    assert all(r["ok"] for r in better.values())
    strict = _rows(_entry(), _entry(accuracy=0.949), {"accuracy": 0.0})
    assert strict["accuracy"]["ok"] is False and strict["accuracy"]["limit"] == 0.0


def test_the_gate_fails_a_missing_entry_a_parity_failure_and_skips_unmeasured_metrics():
    from resnet_deploy.evaluate.gate import compare

    rows = compare({"entries": {"onnx/int8": _entry()}}, {"entries": {}})
    assert [(r["metric"], r["ok"]) for r in rows] == [("present", False)]
    failed = _rows(_entry(), _entry(parity_ok=False))
    assert failed["parity"]["ok"] is False and all(r["ok"] for m, r in failed.items() if m != "parity")
    partial = _rows(_entry(sqnr_db=None), _entry(latency_ratio=None))
    assert "sqnr_db" not in partial and "latency_ratio" not in partial and partial["accuracy"]["ok"]
    assert "latency_ratio" in _rows(_entry(sqnr_db=None), _entry())  # a metric missing skips only itself


# --- exact messages and records (what a user reads, and what mutation testing checks) -----------------


def _raised(fn, *args):
    try:
        fn(*args)
    except Exception as e:  # noqa: BLE001 - the test compares the message of whatever was raised
        return type(e).__name__, str(e)
    return None


def _bundle(tmp_path, name="b", files=None, extra=None):
    import hashlib

    d = tmp_path / name
    d.mkdir()
    (d / "model.bin").write_bytes(b"weights")
    listed = files or {"model.bin": {"sha256": hashlib.sha256(b"weights").hexdigest()}}
    m = {"schema_version": 2, "bundle": name, "files": listed, **(extra or {})}
    (d / "manifest.json").write_text(json.dumps(m))
    (d / "manifest.sha256").write_text(
        hashlib.sha256((d / "manifest.json").read_bytes()).hexdigest() + "  manifest.json\n"
    )
    return d


PUNCT = "+ , - . / = @ _"


def test_the_exact_messages_of_the_name_rules():
    assert _raised(names.check_name, "", "bundle name") == ("UnsafeName", "bundle name is empty or not text")
    assert _raised(names.check_name, "x" * 256, "n") == ("UnsafeName", "n is 256 characters long (at most 255)")
    assert _raised(names.check_path, "/a/-o", "--to") == (
        "UnsafeName",
        "--to '/a/-o' has a part starting with '-' ('-o'), which tools read as an option",
    )
    assert _raised(names.check_path, "/a/../b", "--to") == ("UnsafeName", "--to '/a/../b' climbs out with '..'")
    assert _raised(names.check_name, ".", "bundle name") == ("UnsafeName", "bundle name '.' is not a name")
    assert _raised(names.check_name, "..", "bundle name")[1] == "bundle name '..' climbs out with '..'"
    assert _raised(names.check_name, "a/b", "n") == (
        "UnsafeName",
        f"n 'a/b' has the character '/' at position 1; use only letters, digits and {PUNCT.replace(' /', '')}",
    )
    assert names.safe_name(".x") == "_x" and names.safe_name("-x") == "_x" and names.safe_name("x-") == "x-"
    assert names.safe_name("Xy") == "Xy"
    assert _raised(names.check_folder, "srv/m", "--to") == (
        "UnsafeName",
        "--to 'srv/m' is not an absolute folder on the device; e.g. /home/pi/models",
    )
    assert _raised(names.check_folder, None, "--to")[0] == "UnsafeName"
    assert names.check_folder("/srv/m", "--to") == "/srv/m"
    assert _raised(names.check_folder, "/srv/m$", "--to")[1].startswith("--to '/srv/m$' has the character '$'")


def test_the_exact_messages_of_the_integrity_rules(tmp_path):
    from resnet_deploy.portable import integrity

    assert _raised(integrity.check_member_name, "a b.bin") == (
        "BundleError",
        f"the manifest lists an unsafe file name 'a b.bin' has the character U+0020 at position 1; use "
        f"only letters, digits and {PUNCT}; re-run `package`.",
    )
    d = _bundle(tmp_path)
    (tmp_path / "c").mkdir()
    d.rename(tmp_path / "c" / "renamed")
    assert _raised(integrity.verify_bundle, str(tmp_path / "c" / "renamed")) == (
        "BundleError",
        "the bundle folder is named 'renamed' but its manifest names it 'b': it was renamed after "
        "packaging; use the name it was packaged with.",
    )
    bad = _bundle(tmp_path, "d;x")
    assert _raised(integrity.verify_bundle, str(bad)) == (
        "BundleError",
        f"the manifest's bundle name 'd;x' has the character ';' at position 1; use only letters, digits "
        f"and {PUNCT.replace(' /', '')}; re-run `package`.",
    )
    entry = _bundle(tmp_path, "e", files={"model.bin": "abc"})
    assert _raised(integrity.verify_bundle, str(entry)) == (
        "BundleError",
        "manifest.json: the entry for 'model.bin' has no sha256; re-run `package`.",
    )
    linked = _bundle(tmp_path, "f")
    (linked / "manifest.sha256").rename(linked / "real.sha256")
    (linked / "manifest.sha256").symlink_to(linked / "real.sha256")
    assert _raised(integrity.verify_bundle, str(linked)) == (
        "BundleError",
        "manifest.sha256 is a link, not a file; re-run `package`.",
    )


def test_nested_files_are_verified(tmp_path):
    import hashlib

    from resnet_deploy.portable import integrity

    d = _bundle(tmp_path, "g", files={"sub/x.py": {"sha256": hashlib.sha256(b"print(1)\n").hexdigest()}})
    (d / "sub").mkdir()
    (d / "sub" / "x.py").write_text("print(2)\n")
    assert "sub/x.py sha256" in _raised(integrity.verify_bundle, str(d))[1]
    (d / "sub" / "x.py").write_text("print(1)\n")
    assert integrity.verify_bundle(str(d))["bundle"] == "g"


def test_the_exact_facts_and_profile_messages(tmp_path, monkeypatch):
    import os

    monkeypatch.delenv(device.CPUINFO_ENV, raising=False)
    real = next((ln for ln in open("/proc/cpuinfo") if ln.startswith(("flags", "Features"))), None)
    assert device.cpu_flags() == (sorted(set(real.split(":", 1)[1].split())) if real else [])  # /proc/cpuinfo itself
    colon = _cpuinfo(tmp_path, "flags\t: a b:c d\n")
    assert device.cpu_flags(str(colon)) == ["a", "b:c", "d"]
    for machine, arch in (("AMD64", "x86_64"), ("X86_64", "x86_64"), ("arm64", "aarch64"), ("Riscv64", "riscv64")):
        monkeypatch.setattr(device.platform, "machine", lambda m=machine: m)
        assert device.facts() == {
            "arch": arch,
            "vnni": device.facts()["vnni"],
            "bf16": device.facts()["bf16"],
            "flags_known": bool(real),
            "cpus": os.cpu_count(),
        }
    assert device.mismatch(ARM_PROFILE, X86) == "the bundle was built for arm64 (aarch64) but this device is x86_64"
    assert device.mismatch(VNNI_PROFILE, {**X86, "vnni": False}) == (
        "the bundle was built for x86-vnni, whose int8 format needs VNNI (8-bit weights without reduce_range "
        "saturate without it), but this CPU has no VNNI"
    )
    assert device.facts()["bf16"] == (bool({"avx512_bf16", "amx_bf16"} & set(device.cpu_flags())) if real else None)
    assert str(_raised(device.check_profile, VNNI_PROFILE, False, {**X86, "vnni": False})[1]).endswith(
        "but this CPU has no VNNI; build the bundle with --device for this device, or pass --allow-profile-mismatch"
    )


def test_the_exact_messages_of_the_manifest_and_reference_checks(tmp_path):
    assert str(_raised(checks.check_manifest, _with("tolerance.cosine_min", "x"))[1]) == (
        "manifest.json: tolerance.cosine_min is 'x', not a finite number or null; re-run `package`."
    )
    assert _raised(checks.check_manifest, _with("tolerance", {"cosine_min": None}))[1] == (
        "manifest.json: tolerance is {'cosine_min': None}, not at least one limit; re-run `package`."
    )
    assert _raised(checks.check_manifest, _with("host.threads", 0))[1] == (
        "manifest.json: host.threads is 0, not a whole number from 1 to 4096; re-run `package`."
    )
    checks.check_manifest(_with("host.threads", 1))
    assert _raised(checks.check_manifest, 3)[1] == "manifest.json: the document is 3, not an object; re-run `package`."
    assert _raised(checks.check_manifest, _with("model", 3))[1] == (
        "manifest.json: model is 3, not an object with a name; re-run `package`."
    )
    assert _raised(checks.check_manifest, _with("openvino", 3))[1] == (
        "manifest.json: openvino is 3, not an object with an execution_precision name; re-run `package`."
    )
    long = "x" * 58  # repr 60 characters: shown whole; one more and it is cut
    assert f"'{long}'," in _raised(checks.check_manifest, _with("target", long))[1]
    assert "'" + "x" * 56 + "...," in _raised(checks.check_manifest, _with("target", long + "x"))[1]
    p = _npz(tmp_path, x=np.zeros((2, 2)), outputs=np.ones((3, 4)))
    assert _raised(checks.load_reference, p)[1] == "reference.npz: x has 2 samples but outputs 3; re-run `package`."
    p = _npz(tmp_path, x=np.zeros((2, 2)), outputs=np.ones((2, 4)), labels=np.arange(3))
    assert _raised(checks.load_reference, p)[1] == (
        "reference.npz: x has 2 samples but outputs 2 and labels (3,); re-run `package`."
    )
    for kind, arrays in (
        ("i", {"x": np.zeros((2, 2), np.int8)}),
        ("u", {"x": np.zeros((2, 2), np.uint8)}),
        ("b", {"x": np.zeros((2, 2), bool)}),
        ("f", {"x": np.zeros((2, 2), np.float32)}),
    ):
        x, _, labels = checks.load_reference(_npz(tmp_path, **arrays, outputs=np.ones((2, 4)), labels=np.arange(2)))
        assert x.dtype.kind == kind and labels.dtype.kind == "i"
    assert (
        checks.load_reference(
            _npz(tmp_path, x=np.zeros((2, 2)), outputs=np.ones((2, 4)), labels=np.arange(2, dtype=np.uint8))
        )[2].dtype
        == np.uint8
    )
    (tmp_path / "broken.npz").write_bytes(b"")
    assert _raised(checks.load_reference, str(tmp_path / "broken.npz"))[1].startswith("reference.npz cannot be read (")
    obj = tmp_path / "o.npz"
    np.savez(obj, x=np.array([{"a": 1}], dtype=object), outputs=np.ones((1, 2)))
    assert "Object arrays cannot be loaded" in _raised(checks.load_reference, str(obj))[1]


def test_the_gate_rows_in_full():
    from resnet_deploy.evaluate.gate import compare

    base = {"entries": {"a": _entry(), "b": _entry(), "c": _entry(parity_ok=True)}}
    cur = {"entries": {"b": _entry(accuracy=0.94, parity_ok=False), "c": _entry()}}
    rows = compare(base, cur)
    assert rows[0] == {
        "entry": "a",
        "metric": "present",
        "base": 1,
        "current": 0,
        "change": None,
        "limit": "must be measured",
        "ok": False,
    }
    b = [r for r in rows if r["entry"] == "b"]
    assert [r["metric"] for r in b] == ["accuracy", "top1_agreement", "sqnr_db", "latency_ratio", "parity"]
    assert b[0] == {
        "entry": "b",
        "metric": "accuracy",
        "base": 0.95,
        "current": 0.94,
        "change": -1.0,
        "limit": 0.5,
        "ok": False,
    }
    assert b[1] == {
        "entry": "b",
        "metric": "top1_agreement",
        "base": 0.99,
        "current": 0.99,
        "change": 0.0,
        "limit": 1.0,
        "ok": True,
    }
    assert b[3] == {
        "entry": "b",
        "metric": "latency_ratio",
        "base": 0.5,
        "current": 0.5,
        "change": 0.0,
        "limit": 15.0,
        "ok": True,
    }
    assert b[4] == {
        "entry": "b",
        "metric": "parity",
        "base": True,
        "current": False,
        "change": None,
        "limit": "tolerance table",
        "ok": False,
    }
    assert [r["metric"] for r in rows if r["entry"] == "c"] == [
        "accuracy",
        "top1_agreement",
        "sqnr_db",
        "latency_ratio",
    ]
    no_flag = {k: v for k, v in _entry().items() if k != "parity_ok"}
    assert [r["metric"] for r in compare({"entries": {"d": _entry()}}, {"entries": {"d": no_flag}})] == [
        "accuracy",
        "top1_agreement",
        "sqnr_db",
        "latency_ratio",
    ]  # no parity flag: nothing to fail
    # changes are kept to 1e-9: a difference below that is float noise, not a regression
    tiny = compare({"entries": {"e": _entry(sqnr_db=20.0)}}, {"entries": {"e": _entry(sqnr_db=19.0 - 4e-10)}})
    assert [r for r in tiny if r["metric"] == "sqnr_db"][0]["ok"] is True
    slow = compare(
        {"entries": {"e": _entry(latency_ratio=1.0)}}, {"entries": {"e": _entry(latency_ratio=1.15 + 4e-12)}}
    )
    assert [r for r in slow if r["metric"] == "latency_ratio"][0]["ok"] is True


# --- the signature check, as the device runs it ----------------------------------------------------------


@pytest.fixture(scope="module")
def ec_keys(tmp_path_factory):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    d = tmp_path_factory.mktemp("keys")
    for name in ("ours", "theirs"):
        key = ec.generate_private_key(ec.SECP256R1())
        (d / f"{name}.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        (d / f"{name}.pub").write_bytes(
            key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
    return d


def test_the_signature_status_in_every_case(tmp_path, ec_keys, monkeypatch):
    import builtins

    from resnet_deploy.portable import integrity
    from resnet_deploy.ship.signing import sign_bundle

    d = _bundle(tmp_path, "s")
    pub = str(ec_keys / "ours.pub")
    assert integrity.signature_status(str(d)) == {"signed": False, "checked": False, "why": "no --verify-key given"}
    assert _raised(integrity.signature_status, str(d), pub) == (
        "BundleError",
        "the bundle is not signed (no model.sig); package it with --sign-key, or run without --verify-key.",
    )
    sign_bundle(d, ec_keys / "ours.key")
    assert integrity.signature_status(str(d)) == {"signed": True, "checked": False, "why": "no --verify-key given"}
    assert integrity.signature_status(str(d), pub) == {"signed": True, "checked": True, "ok": True}
    other = _raised(integrity.signature_status, str(d), str(ec_keys / "theirs.pub"))
    assert other[0] == "BundleError" and other[1].startswith(
        f"the bundle does not match its signature for key {ec_keys / 'theirs.pub'} ("
    )
    assert other[1].endswith("): it was changed after signing, or signed with another key; do not deploy it.")
    (d / ".gitignore").write_text("*\n")  # git's files are bundle files like any other: not ignored
    assert _raised(integrity.signature_status, str(d), pub)[0] == "BundleError"
    (d / ".gitignore").unlink()
    (d / "model.bin").write_bytes(b"weightz")
    assert "(model.bin was changed)" in _raised(integrity.signature_status, str(d), pub)[1]
    real_import = builtins.__import__

    def no_model_signing(name, *args, **kwargs):
        if name == "model_signing":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_model_signing)
    assert integrity.signature_status(str(d), pub) == {
        "signed": True,
        "checked": False,
        "why": "model-signing is not installed here",
    }


def test_the_signature_problem_in_a_few_words():
    from resnet_deploy.portable.integrity import _signature_problem

    assert _signature_problem("Signature mismatch\nHash mismatch for 'rd_portable/x.py': 'ab' != 'cd'") == (
        "rd_portable/x.py was changed"
    )
    assert _signature_problem("\n  first line  \nsecond") == "first line"
    assert _signature_problem("") == "no reason given"
    assert _signature_problem("x" * 200) == "x" * 140


def test_a_reference_that_cannot_be_read_is_named_in_at_most_120_characters(tmp_path, monkeypatch):
    p = _npz(tmp_path, x=np.zeros((2, 2)), outputs=np.ones((2, 4)))
    for said, shown in (("", "?"), ("y" * 200, "y" * 120), ("first\nsecond", "first")):

        def broken(*a, said=said, **k):
            raise ValueError(said)

        monkeypatch.setattr(np, "load", broken)
        assert _raised(checks.load_reference, p)[1] == f"reference.npz cannot be read ({shown}); re-run `package`."


# --- the CLI's exit mapping --------------------------------------------------------------------------------


def test_the_full_disk_line_names_the_mount_the_file_is_on():
    import errno
    from pathlib import Path

    from resnet_deploy.exits import mount_of, os_error_line

    assert mount_of(Path("/")) == Path("/") and mount_of(Path("/no/such/folder/file")) == Path("/")
    assert mount_of(Path("/proc/self/no/such")) == Path("/proc")  # /proc is a mount of its own
    assert os_error_line(OSError(errno.ENOSPC, "No space left on device", "/proc/x/y")) == (
        "the disk is full (the one mounted at '/proc'): could not write '/proc/x/y'; free space there or pass --out on "
        "another disk."
    )
    assert os_error_line(OSError(errno.ENOSPC, "No space left on device")) == (
        "the disk is full: could not write; free space there or pass --out on another disk."
    )


def test_a_file_where_a_folder_is_needed_is_said_so(tmp_path):
    import errno

    from resnet_deploy.exits import os_error_line

    f = tmp_path / "afile"
    f.write_text("x")
    for code in (errno.EEXIST, errno.ENOTDIR):
        assert os_error_line(OSError(code, "x", str(f))) == (
            f"{str(f)!r} is a file where a folder is needed; pass a path whose folders are folders."
        )
    assert os_error_line(OSError(errno.EIO, "I/O error", str(f))).startswith(f"cannot use {str(f)!r}: I/O error")


def test_a_command_that_succeeds_returns_without_exiting():
    import click

    from resnet_deploy.exits import run

    @click.group()
    def group():
        pass

    @group.command()
    def ok():
        pass

    @group.command()
    def three():
        click.get_current_context().exit(3)

    assert run(group, ["ok"], "x") is None  # no SystemExit at all on success
    assert run(group, ["--help"], "x") is None  # help returns 0: nothing to exit with
    with pytest.raises(SystemExit) as e:
        run(group, ["three"], "x")
    assert e.value.code == 3


# --- optional extras ---------------------------------------------------------------------------


@pytest.mark.parametrize("extra", ["fleet", "signing"])
def test_a_missing_extra_is_one_line_that_names_it(extra, tmp_path, monkeypatch, capsys):
    from resnet_deploy import extras
    from resnet_deploy.cli.main import main

    real = extras.find_spec
    monkeypatch.setattr(extras, "find_spec", lambda name: None if name in extras.EXTRAS[extra] else real(name))
    (tmp_path / "hosts.ini").write_text("pi ansible_host=127.0.0.1\n")
    (tmp_path / "k.pem").write_text("not a key\n")
    argv = (
        ["deploy", str(tmp_path / "b.tar.gz"), "--inventory", str(tmp_path / "hosts.ini"), "--to", "/srv/m"]
        if extra == "fleet"
        else ["package", "--targets", "tflite", "--sign-key", str(tmp_path / "k.pem")]
    )
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 4 and err.count("error:") == 1 and "Traceback" not in err, err
    assert f"pip install 'resnet-deploy[{extra}]'" in err
