"""Every manifest field and reference array the self-test uses, checked before use: a manifest
and checksum that agree prove only that nobody changed them since they were written, not that
whoever wrote them was us. A field of the wrong type, a tolerance that is not a finite number
(a NaN limit would silently switch its check off) or a reference that is not finite numbers is
a BundleError (exit 6) naming the field, never a traceback."""
import math
import zipfile

from .integrity import BundleError, check_member_name
from .metrics import CHECKS

TARGETS = ("tflite", "onnx", "openvino")  # the runtimes runtimes.load_model knows
MAX_THREADS_IN_MANIFEST = 4096


def _bad(field, value, want):
    return BundleError("manifest.json: %s is %s, not %s; re-run `package`." % (field, _show(value), want))


def _show(value):
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _text(m, key):
    v = m.get(key)
    if not isinstance(v, str) or not v:
        raise _bad(key, v, "a name")
    return v


def _tolerance(tol):
    if not isinstance(tol, dict):
        raise _bad("tolerance", tol, "an object of limits")
    fields = {f for _, f, _ in CHECKS}
    for key, v in tol.items():
        if key in fields and v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))
                                                 or not math.isfinite(v)):
            raise _bad("tolerance.%s" % key, v, "a finite number or null")
    if all(tol.get(f) is None for f in fields):
        raise _bad("tolerance", tol, "at least one limit")
    return tol


def _profile(p):
    if p is None:
        return None
    if not isinstance(p, dict):
        raise _bad("device_profile", p, "an object or null")
    for key, kinds in (("name", str), ("arch", str), ("vnni", bool), ("bf16", bool)):
        if p.get(key) is not None and not isinstance(p[key], kinds):
            raise _bad("device_profile.%s" % key, p[key], kinds.__name__)
    return p


def _host(h):
    if h is None:
        return None
    if not isinstance(h, dict):
        raise _bad("host", h, "an object or null")
    t = h.get("threads")
    if t is not None and (isinstance(t, bool) or not isinstance(t, int) or not 1 <= t <= MAX_THREADS_IN_MANIFEST):
        raise _bad("host.threads", t, "a whole number from 1 to %d" % MAX_THREADS_IN_MANIFEST)
    return h


def check_manifest(m):
    """The fields the self-test reads, each of the type and range it needs; returns m."""
    if not isinstance(m, dict):
        raise _bad("the document", m, "an object")
    target = _text(m, "target")
    if target not in TARGETS:
        raise _bad("target", target, "one of %s" % ", ".join(TARGETS))
    _text(m, "precision")
    try:
        check_member_name(_text(m, "model_file"))
    except BundleError as e:
        raise BundleError("manifest.json: model_file: %s" % e)
    files = m.get("files")
    if not isinstance(files, dict) or m["model_file"] not in files:
        raise _bad("model_file", m["model_file"], "a file the manifest lists")
    model = m.get("model")
    if not isinstance(model, dict) or not isinstance(model.get("name"), str):
        raise _bad("model", model, "an object with a name")
    ov = m.get("openvino", {})
    if not isinstance(ov, dict) or not isinstance(ov.get("execution_precision"), (str, type(None))):
        raise _bad("openvino", ov, "an object with an execution_precision name")
    _tolerance(m.get("tolerance"))
    _profile(m.get("device_profile"))
    _host(m.get("host"))
    return m


def _array(z, key, np, kinds):
    if key not in z.files:
        raise BundleError("reference.npz has no %r array; re-run `package`." % key)
    a = z[key]  # allow_pickle=False: an object array raises ValueError, caught by the caller
    if a.dtype.kind not in kinds or a.ndim < 1 or len(a) == 0:
        raise BundleError("reference.npz: %r is %s of shape %s, not a non-empty numeric array; re-run `package`."
                          % (key, a.dtype, a.shape))
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        raise BundleError("reference.npz: %r holds NaN or infinite values; re-run `package`." % key)
    return a


def load_reference(path):
    """(x, Keras outputs, labels or None) from a bundle's reference.npz, each checked: numeric,
    finite, the same number of samples, no pickled objects."""
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as z:
            x, ref = _array(z, "x", np, ("f", "i", "u", "b")), _array(z, "outputs", np, ("f",))
            labels = _array(z, "labels", np, ("i", "u")) if "labels" in z.files else None
    except BundleError:
        raise
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as e:  # not a zip, object arrays, cut short
        raise BundleError("reference.npz cannot be read (%s); re-run `package`." % (str(e).splitlines() or ["?"])[0][:120])
    if len(ref) != len(x) or (labels is not None and (labels.ndim != 1 or len(labels) != len(x))):
        raise BundleError("reference.npz: x has %d samples but outputs %d%s; re-run `package`."
                          % (len(x), len(ref), "" if labels is None else " and labels %s" % (labels.shape,)))
    return x, ref, labels


def no_nan(value):
    """NaN as null, everywhere in a JSON document we write (files, the self-test's line): JSON
    has no NaN, and a reader must never meet a bare one."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: no_nan(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [no_nan(v) for v in value]
    return value
