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


@pytest.mark.parametrize("flags, vnni", [("avx2 avx512_vnni", True), ("avx2 avx_vnni", True), ("amx_int8", True),
                                         ("avx2 fma", False), ("", None)])
def test_facts_say_vnni_from_the_flags_and_unknown_without_them(tmp_path, monkeypatch, flags, vnni):
    monkeypatch.setenv(device.CPUINFO_ENV, str(_cpuinfo(tmp_path, f"flags\t: {flags}\n" if flags else "x\n")))
    f = device.facts()
    assert f["vnni"] is vnni and f["flags_known"] is bool(flags)


@pytest.mark.parametrize("profile, dev, refused", [
    (None, X86, None),
    ({}, X86, None),
    (VNNI_PROFILE, X86, None),
    (VNNI_PROFILE, {**X86, "vnni": False}, "needs VNNI"),
    (VNNI_PROFILE, {**X86, "vnni": None}, None),  # flags unknown: not refused on a guess
    (AVX2_PROFILE, X86, None),  # an avx2 bundle fits a VNNI CPU by design
    (AVX2_PROFILE, {**X86, "vnni": False}, None),
    (ARM_PROFILE, X86, "built for arm64 (aarch64) but this device is x86_64"),
    ({"name": "x86-vnni", "arch": "x86_64", "vnni": True}, {"arch": "aarch64", "vnni": False}, "but this device is aarch64"),
])
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


@pytest.mark.skipif(bool(__import__("os").environ.get("MUTANT_UNDER_TEST")),
                    reason="under mutmut the module's source, which the probe ships, is its instrumented copy")
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

HOSTILE = ["x{{ 7*7 }}", "m{% if 1 %}", "d$(id)", "d;id;", "d`id`", "d x", "d\nx", "d|id", "d&id", "d>x", "d'x",
           'd"x', "d\\x", "d*", "d?", "d~x", "d#x", "d!x", "é", "d\tx", "d%x", "(x)", "[x]"]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_names_and_paths_are_refused_naming_the_character(text):
    bad = next(c for c in text if c not in names.SAFE_PATH_CHARS)
    with pytest.raises(names.UnsafeName) as e:
        names.check_name(text, "bundle name")
    assert str(e.value).startswith(f"bundle name {text!r} has the character")
    assert f"at position {text.index(bad)}" in str(e.value)
    with pytest.raises(names.UnsafeName):
        names.check_path("/srv/" + text, "--to")


@pytest.mark.parametrize("text, ok", [("digits-onnx-int8", True), ("a.b_c+d@e,f=g", True), ("-x", False),
                                      ("..", False), (".", False), ("", False), ("a/b", False), ("x" * 255, True),
                                      ("x" * 256, False), (None, False), (3, False)])
def test_names(text, ok):
    if ok:
        assert names.check_name(text) == text
    else:
        with pytest.raises(names.UnsafeName):
            names.check_name(text)


@pytest.mark.parametrize("text, ok", [("/home/pi/models", True), ("/a/-b", False), ("/a/../b", False), ("/a/b/", True),
                                      ("rel/dir", True), ("/" + "a" * 4095, True), ("/" + "a" * 4096, False)])
def test_paths(text, ok):
    if ok:
        assert names.check_path(text) == text
    else:
        with pytest.raises(names.UnsafeName):
            names.check_path(text)


def test_the_message_says_what_to_use():
    with pytest.raises(names.UnsafeName) as e:
        names.check_path("/d$x", "--to's folder")
    assert str(e.value) == ("--to's folder '/d$x' has the character '$' at position 2; use only letters, digits and "
                            "+ , - . / = @ _")
    with pytest.raises(names.UnsafeName, match=r"U\+000A at position 1"):
        names.check_name("a\nb")
    with pytest.raises(names.UnsafeName, match=r"U\+0020"):
        names.check_name("a b")


@pytest.mark.parametrize("text, made", [("my model (1)", "my_model__1_"), ("-x", "_x"), (".hidden", "_hidden"),
                                        ("", "_"), ("ok-name", "ok-name"), ("é", "_")])
def test_safe_name(text, made):
    assert names.safe_name(text) == made and names.check_name(made) == made


# --- the self-test's manifest and reference checks ----------------------------------------------------

MANIFEST = {"target": "onnx", "precision": "int8", "model_file": "model.onnx", "files": {"model.onnx": {}},
            "model": {"name": "m"}, "tolerance": {"cosine_min": 0.98, "top1_min": None},
            "device_profile": VNNI_PROFILE, "host": {"threads": 2}, "openvino": {"execution_precision": "f32"}}


def _with(path, value):
    m = json.loads(json.dumps(MANIFEST))
    *parents, last = path.split(".")
    node = m
    for p in parents:
        node = node[p]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return m


def test_a_valid_manifest_passes_and_optional_parts_may_be_missing():
    assert checks.check_manifest(MANIFEST) is MANIFEST
    for optional in ("device_profile", "host", "openvino"):
        checks.check_manifest(_with(optional, KeyError))
    checks.check_manifest(_with("device_profile", None))
    checks.check_manifest(_with("host.threads", None))
    checks.check_manifest(_with("tolerance.cosine_min", 1))  # an int is a number
    checks.check_manifest(_with("host.threads", checks.MAX_THREADS_IN_MANIFEST))


@pytest.mark.parametrize("path, value, said", [
    ("target", KeyError, "target is None, not a name"), ("target", "", "target is '', not a name"),
    ("target", "trt", "target is 'trt', not one of tflite, onnx, openvino"),
    ("precision", None, "precision is None"), ("model_file", "../x", "not a safe relative file name"),
    ("model_file", "other.onnx", "model_file is 'other.onnx', not a file the manifest lists"),
    ("files", None, "model_file is 'model.onnx', not a file the manifest lists"),
    ("model", {"name": 3}, "model is {'name': 3}"), ("model", None, "model is None"),
    ("openvino", {"execution_precision": 16}, "openvino is"), ("openvino", "f32", "openvino is 'f32'"),
    ("tolerance", [], "tolerance is [], not an object of limits"),
    ("tolerance.cosine_min", True, "tolerance.cosine_min is True"),
    ("tolerance.cosine_min", "0.9", "tolerance.cosine_min is '0.9'"),
    ("tolerance.cosine_min", math.nan, "tolerance.cosine_min is nan"),
    ("tolerance.cosine_min", -math.inf, "tolerance.cosine_min is -inf"),
    ("tolerance", {"top1_min": None}, "not at least one limit"), ("tolerance", {"why": 1}, "not at least one limit"),
    ("device_profile", "x86", "device_profile is 'x86', not an object or null"),
    ("device_profile.name", 1, "device_profile.name is 1, not str"),
    ("device_profile.arch", [], "device_profile.arch is [], not str"),
    ("device_profile.vnni", 1, "device_profile.vnni is 1, not bool"),
    ("host", [], "host is [], not an object or null"), ("host.threads", 0, "host.threads is 0"),
    ("host.threads", True, "host.threads is True"), ("host.threads", 2.0, "host.threads is 2.0"),
    ("host.threads", checks.MAX_THREADS_IN_MANIFEST + 1, "host.threads is 4097"),
])
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
    x, ref, labels = checks.load_reference(_npz(tmp_path, x=np.zeros((3, 2), np.uint8), outputs=np.ones((3, 4)),
                                                labels=np.arange(3)))
    assert x.shape == (3, 2) and ref.shape == (3, 4) and list(labels) == [0, 1, 2]
    assert checks.load_reference(_npz(tmp_path, x=np.zeros((1,), bool), outputs=np.ones((1,))))[2] is None


@pytest.mark.parametrize("arrays, said", [
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
])
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
    assert limits.thread_problem(9) == ("--threads 9 is more than 4 x the 2 CPUs here (at most 8); use the number "
                                        "of cores")
    for bad in (0, -1, True, 1.5, "2", None):
        assert "must be a whole number >= 1" in limits.thread_problem(bad)


def test_seconds_limits():
    assert limits.seconds_problem(0.1, "--seconds") is None and limits.seconds_problem(limits.MAX_SECONDS, "s") is None
    for bad in (0, -1, math.inf, math.nan, True, "1"):
        assert "must be a finite number of seconds > 0" in limits.seconds_problem(bad, "--seconds")
    assert "more than a day" in limits.seconds_problem(limits.MAX_SECONDS + 1, "--seconds")


def test_memory_limits(tmp_path):
    info = tmp_path / "meminfo"
    info.write_text("MemTotal: 100 kB\nMemAvailable:    2048 kB\n")
    assert limits.available_bytes(str(info)) == 2048 * 1024
    assert limits.available_bytes(str(tmp_path / "missing")) is None
    assert limits.memory_problem(1 << 20, "x", available=2 << 20) is None
    assert limits.memory_problem(2 << 20, "x", available=2 << 20) is None
    assert limits.memory_problem(3 << 30, "the model", available=1 << 30) == (
        "the model needs about 3 GiB but this machine has 1 GiB available")


# --- the gate's comparison ---------------------------------------------------------------------------------

def _entry(**kw):
    return {"accuracy": 0.95, "top1_agreement": 0.99, "sqnr_db": 20.0, "latency_ratio": 0.5, "parity_ok": True, **kw}


def _rows(base, cur, limits_=None):
    from resnet_deploy.gate import compare

    rows = compare({"entries": {"onnx/int8": base}}, {"entries": {"onnx/int8": cur}}, limits_)
    return {r["metric"]: r for r in rows}


def test_the_gate_compares_each_metric_at_its_limit():
    from resnet_deploy.gate import GATE_TOLERANCES

    acc, agree, sqnr, lat = (GATE_TOLERANCES[k][0] for k in ("accuracy", "top1_agreement", "sqnr_db", "latency_ratio"))
    exactly = _rows(_entry(), _entry(accuracy=0.95 - acc / 100, top1_agreement=0.99 - agree / 100,
                                     sqnr_db=20.0 - sqnr, latency_ratio=0.5 * (1 + lat / 100)))
    assert all(r["ok"] for r in exactly.values()), exactly  # exactly at every limit: passes
    beyond = _rows(_entry(), _entry(accuracy=0.95 - (acc + 0.01) / 100, top1_agreement=0.99 - (agree + 0.01) / 100,
                                    sqnr_db=20.0 - sqnr - 0.01, latency_ratio=0.5 * (1 + (lat + 0.1) / 100)))
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
    from resnet_deploy.gate import compare

    rows = compare({"entries": {"onnx/int8": _entry()}}, {"entries": {}})
    assert [(r["metric"], r["ok"]) for r in rows] == [("present", False)]
    failed = _rows(_entry(), _entry(parity_ok=False))
    assert failed["parity"]["ok"] is False and all(r["ok"] for m, r in failed.items() if m != "parity")
    partial = _rows(_entry(sqnr_db=None), _entry(latency_ratio=None))
    assert "sqnr_db" not in partial and "latency_ratio" not in partial and partial["accuracy"]["ok"]
