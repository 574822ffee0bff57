#!/usr/bin/env python3
"""resnet-deploy bundle self-test: needs only Python 3.8+, numpy and the target's runtime.

    python selftest.py [--bundle DIR] [--threads N] [--warmup-s S] [--seconds S]

Verifies the sha256 of every file, loads the model with the runtime (LiteRT / tflite-runtime /
tf.lite, onnxruntime or openvino), runs the reference inputs, checks them against the Keras
outputs with the bundle's tolerances, times the model with the same latency protocol as the
host, and prints one JSON object. Exit code 0 only if everything holds.

This file is also the numpy-only core of resnet-deploy on the host (metrics, tolerance checks,
the latency protocol, quantization of I/O): the host imports it, and `package` copies it into
every bundle verbatim, so the device judges with exactly the code the host judged with.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import sys
import time

import numpy as np

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
MANIFEST_SUM = "manifest.sha256"
REFERENCE = "reference.npz"

EXIT_OK, EXIT_PARITY, EXIT_INTEGRITY, EXIT_RUNTIME = 0, 5, 6, 4

# ---------------------------------------------------------------------------------------------
# Metrics and tolerance checks (the host's parity.compare/check wrap these)
# ---------------------------------------------------------------------------------------------


def is_classifier_output(y):
    return y.ndim == 2 and y.shape[1] >= 2


def compare(ref, out, labels=None):
    """Metrics of `out` against `ref` (same shape, sample-major), computed in float64."""
    ref64 = np.asarray(ref, dtype=np.float64)
    out64 = np.asarray(out, dtype=np.float64)
    if ref64.shape != out64.shape:
        raise ValueError("output shape %s differs from reference %s" % (out64.shape, ref64.shape))
    diff = out64 - ref64
    ref_peak = float(np.abs(ref64).max()) or 1.0
    r, o = ref64.ravel(), out64.ravel()
    denom = float(np.linalg.norm(r) * np.linalg.norm(o))
    cosine = float(r @ o / denom) if denom else (1.0 if not np.any(diff) else 0.0)
    noise = float(np.sum(diff ** 2))
    sqnr = float("inf") if noise == 0 else float(10 * np.log10(np.sum(ref64 ** 2) / noise))
    m = {"max_abs": float(np.abs(diff).max()), "mean_abs": float(np.abs(diff).mean()),
         "max_abs_rel": float(np.abs(diff).max()) / ref_peak, "cosine": cosine, "sqnr_db": sqnr,
         "top1_agreement": None, "top5_overlap": None, "accuracy": None, "ref_accuracy": None}
    if is_classifier_output(ref64):
        ref_top1, out_top1 = ref64.argmax(1), out64.argmax(1)
        m["top1_agreement"] = float(np.mean(ref_top1 == out_top1))
        k = min(5, ref64.shape[1])
        rk = np.argsort(-ref64, axis=1)[:, :k]
        ok = np.argsort(-out64, axis=1)[:, :k]
        m["top5_overlap"] = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(rk, ok)]))
        if labels is not None:
            m["accuracy"] = float(np.mean(out_top1 == labels))
            m["ref_accuracy"] = float(np.mean(ref_top1 == labels))
    return m


def acc_drop(m):
    """Accuracy drop in percentage points (positive = worse than the reference), or None."""
    if m.get("accuracy") is None or m.get("ref_accuracy") is None:
        return None
    return 100.0 * (m["ref_accuracy"] - m["accuracy"])


# (metric, tolerance field, kind): "max" means value <= limit, "min" means value >= limit
CHECKS = (("max_abs_rel", "max_abs_rel", "max"), ("cosine", "cosine_min", "min"), ("sqnr_db", "sqnr_min_db", "min"),
          ("top1_agreement", "top1_min", "min"), ("acc_drop", "acc_drop_max", "max"))


def check(m, tol):
    """Every tolerance the metrics break, as dicts {metric, value, limit, kind}."""
    values = dict(m, acc_drop=acc_drop(m))
    out = []
    for metric, field, kind in CHECKS:
        value, limit = values.get(metric), tol.get(field)
        if value is None or limit is None:
            continue
        bad = value > limit if kind == "max" else value < limit
        if bad or value != value:  # NaN never passes
            out.append({"metric": metric, "value": float(value), "limit": float(limit), "kind": kind})
    return out


# ---------------------------------------------------------------------------------------------
# The latency protocol (the host's latency.measure wraps this)
# ---------------------------------------------------------------------------------------------

DEFAULT_PROTOCOL = {"warmup_runs": 10, "warmup_s": 1.0, "runs": 50, "seconds": 2.0, "max_runs": 100000}


def peak_rss_mb():
    """Peak RSS of this process image (VmHWM restarts at exec; ru_maxrss does not)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def time_calls(run, prepared, batch, protocol=None):
    """First call, warm-up (>= warmup_runs and warmup_s), then >= runs and seconds of timed calls,
    each timed with perf_counter_ns around `run(prepared)` only."""
    p = dict(DEFAULT_PROTOCOL, **(protocol or {}))
    t0 = time.perf_counter_ns()
    run(prepared)
    first_ms = (time.perf_counter_ns() - t0) / 1e6
    start, n = time.perf_counter(), 0
    while n < p["warmup_runs"] or time.perf_counter() - start < p["warmup_s"]:
        run(prepared)
        n += 1
    times = []
    start = time.perf_counter()
    while (len(times) < p["runs"] or time.perf_counter() - start < p["seconds"]) and len(times) < p["max_runs"]:
        t = time.perf_counter_ns()
        run(prepared)
        times.append(time.perf_counter_ns() - t)
    ms = np.asarray(times, dtype=np.float64) / 1e6
    return {"runs": int(len(ms)), "first_ms": first_ms, "p50": float(np.percentile(ms, 50)),
            "p90": float(np.percentile(ms, 90)), "p99": float(np.percentile(ms, 99)), "mean": float(ms.mean()),
            "std": float(ms.std()), "min": float(ms.min()), "throughput": float(batch * 1000.0 / ms.mean()),
            "batch": int(batch), "peak_rss_mb": peak_rss_mb()}


# ---------------------------------------------------------------------------------------------
# Quantized I/O (the host's TFLite runner uses these too)
# ---------------------------------------------------------------------------------------------


def quantize(x, scale, zero_point, dtype):
    """float32 -> integer tensor with the model's own scale and zero point."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f" or not scale:
        return x.astype(dtype, copy=False)
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale) + zero_point, info.min, info.max).astype(dtype)


def dequantize(y, scale, zero_point):
    if np.dtype(y.dtype).kind == "f" or not scale:
        return y.astype(np.float32, copy=False)
    return ((y.astype(np.float32) - zero_point) * scale).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Integrity
# ---------------------------------------------------------------------------------------------


class BundleError(Exception):
    """The bundle cannot be trusted or used; the message says what and how to fix it."""

    exit_code = EXIT_INTEGRITY


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_bundle(bundle):
    """Check manifest.json against manifest.sha256 and every listed file against the manifest.
    Returns the manifest; raises BundleError naming the first file that does not match."""
    mpath, spath = os.path.join(bundle, MANIFEST), os.path.join(bundle, MANIFEST_SUM)
    for p in (mpath, spath):
        if not os.path.isfile(p):
            raise BundleError("%s is missing: %s is not a complete resnet-deploy bundle; re-run `package`." % (os.path.basename(p), bundle))
    with open(spath) as f:
        expected = (f.read().split() or [""])[0]
    if sha256_file(mpath) != expected:
        raise BundleError("manifest.json does not match manifest.sha256: the manifest was changed; re-run `package`.")
    with open(mpath) as f:
        manifest = json.load(f)
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise BundleError("bundle schema_version %r is not %d; use the selftest.py of the resnet-deploy that wrote it."
                          % (manifest.get("schema_version"), SCHEMA_VERSION))
    for name, rec in manifest["files"].items():
        path = os.path.join(bundle, name)
        if os.path.basename(name) != name or not os.path.isfile(path):
            raise BundleError("%s listed in the manifest is missing or not a plain file name; re-run `package`." % name)
        actual = sha256_file(path)
        if actual != rec["sha256"]:
            raise BundleError("%s sha256 %s... does not match the manifest's %s...: the file was changed or corrupted; "
                              "re-deploy the bundle." % (name, actual[:12], rec["sha256"][:12]))
    return manifest


# ---------------------------------------------------------------------------------------------
# Runtimes: the least code that loads each artifact with nothing but its runtime
# ---------------------------------------------------------------------------------------------


def _version(module):
    return getattr(module, "__version__", None)


def _import_tensorflow():
    import tensorflow as tf

    return tf


def tflite_interpreter_class(import_tensorflow=_import_tensorflow):
    """(Interpreter class, source, version) from ai_edge_litert, else tflite_runtime, else tf.lite.
    Raises ImportError if none is installed. The host passes its own quiet TensorFlow import."""
    for mod_name, label in (("ai_edge_litert.interpreter", "ai_edge_litert"),
                            ("tflite_runtime.interpreter", "tflite_runtime")):
        try:
            mod = __import__(mod_name, fromlist=["Interpreter"])
        except ImportError:
            continue
        return mod.Interpreter, label, _version(__import__(label)) or _version(mod)
    tf = import_tensorflow()
    return tf.lite.Interpreter, "tf.lite", tf.__version__


def ort_session(path, threads):
    """ONNX Runtime session on the CPU provider, full graph optimisation, `threads` intra-op
    threads (None: ORT's default of all cores)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def ov_compile(core, model, batch, threads, precision_hint):
    """Compile an OpenVINO model for CPU at a static batch with an explicit precision hint.
    Returns (compiled model, what it really uses); the caller decides what a mismatch means."""
    shape = [d.get_length() for d in list(model.inputs[0].get_partial_shape())[1:]]
    model.reshape([batch] + shape)
    cfg = {"PERFORMANCE_HINT": "LATENCY"}
    if threads:
        cfg["INFERENCE_NUM_THREADS"] = int(threads)
    if precision_hint:
        cfg["INFERENCE_PRECISION_HINT"] = precision_hint
    compiled = core.compile_model(model, "CPU", cfg)
    actual = {"inference_precision": str(compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()),
              "threads": int(compiled.get_property("INFERENCE_NUM_THREADS")),
              "streams": int(compiled.get_property("NUM_STREAMS"))}
    return compiled, actual


class TFLiteModel:
    def __init__(self, path, threads):
        try:
            interp_cls, self.source, version = tflite_interpreter_class()
        except ImportError:
            raise BundleError("no TFLite runtime: install ai-edge-litert or tflite-runtime") from None
        self.interp = interp_cls(model_path=path, num_threads=threads)
        self.interp.allocate_tensors()
        self.inp = self.interp.get_input_details()[0]
        self.out = self.interp.get_output_details()[0]
        self.info = {"runtime": self.source, "version": version, "threads": threads}

    def prepare(self, x):
        if int(self.interp.get_input_details()[0]["shape"][0]) != x.shape[0]:
            self.interp.resize_tensor_input(self.inp["index"], list(x.shape))
            self.interp.allocate_tensors()
        scale, zp = self.inp["quantization"]
        return quantize(x, scale, zp, self.inp["dtype"])

    def run(self, xq):
        self.interp.set_tensor(self.inp["index"], xq)
        self.interp.invoke()
        return self.interp.get_tensor(self.out["index"])

    def finish(self, y):
        scale, zp = self.out["quantization"]
        return dequantize(y, scale, zp)


class OrtModel:
    def __init__(self, path, threads):
        try:
            import onnxruntime as ort
        except ImportError:
            raise BundleError("no ONNX runtime: install onnxruntime") from None
        self.sess = ort_session(path, threads)
        self.in_name, self.out_name = self.sess.get_inputs()[0].name, self.sess.get_outputs()[0].name
        self.info = {"runtime": "onnxruntime", "version": ort.__version__,
                     "threads": self.sess.get_session_options().intra_op_num_threads}

    def prepare(self, x):
        return x

    def run(self, x):
        return self.sess.run([self.out_name], {self.in_name: x})[0]

    def finish(self, y):
        return y.astype(np.float32, copy=False)


class OVModel:
    def __init__(self, path, threads, precision_hint):
        try:
            import openvino as ov
        except ImportError:
            raise BundleError("no OpenVINO runtime: install openvino") from None
        self.ov = ov
        self.core = ov.Core()
        self.model = self.core.read_model(path)
        self.threads, self.hint = threads, precision_hint
        self.batch = None
        self.info = {"runtime": "openvino", "version": ov.__version__}

    def _compile(self, batch):
        compiled, actual = ov_compile(self.core, self.model, batch, self.threads, self.hint)
        if self.hint and actual["inference_precision"] != self.hint:
            raise BundleError("OpenVINO compiled in %s, not the requested %s" % (actual["inference_precision"], self.hint))
        self.info.update(inference_precision=actual["inference_precision"], threads=actual["threads"])
        self.request, self.batch = compiled.create_infer_request(), batch

    def prepare(self, x):
        if x.shape[0] != self.batch:
            self._compile(x.shape[0])
        self._bound = x
        self.request.set_input_tensor(self.ov.Tensor(x, shared_memory=True))
        return x

    def run(self, x):
        self.request.infer()
        return self.request.get_output_tensor(0).data

    def finish(self, y):
        return np.array(y, dtype=np.float32, copy=True)


def load_model(bundle, manifest, threads):
    target, model_file = manifest["target"], os.path.join(bundle, manifest["model_file"])
    if target == "tflite":
        return TFLiteModel(model_file, threads)
    if target == "onnx":
        return OrtModel(model_file, threads)
    if target == "openvino":
        return OVModel(model_file, threads, manifest.get("openvino", {}).get("execution_precision"))
    raise BundleError("unknown target %r in the manifest" % target)


def predict(model, x):
    outs = []
    for i in range(len(x)):
        outs.append(model.finish(model.run(model.prepare(x[i:i + 1]))))
    return np.concatenate(outs, axis=0)


# ---------------------------------------------------------------------------------------------
# The self-test
# ---------------------------------------------------------------------------------------------


def selftest(bundle, threads=None, protocol=None):
    """Run every check; return (result dict, exit code)."""
    result = {"ok": False, "bundle": os.path.basename(os.path.abspath(bundle)), "python": platform.python_version(),
              "numpy": np.__version__, "machine": platform.machine()}
    try:
        manifest = verify_bundle(bundle)
        result.update(integrity="ok", target=manifest["target"], precision=manifest["precision"],
                      model=manifest["model"]["name"])
        threads = threads or manifest.get("host", {}).get("threads") or 2
        with np.load(os.path.join(bundle, REFERENCE)) as z:
            x, ref = z["x"], z["outputs"]
            labels = z["labels"] if "labels" in z.files else None
        try:
            model = load_model(bundle, manifest, threads)
            out = predict(model, x)
        except BundleError:
            raise
        except Exception as e:  # the runtime's own error types
            result["error"] = "the runtime could not run the model: %s: %s" % (type(e).__name__, str(e).splitlines()[0][:300] if str(e) else "")
            return result, EXIT_RUNTIME
        metrics = compare(ref, out, labels)
        metrics["acc_drop"] = acc_drop(metrics)
        breaches = check(metrics, manifest["tolerance"])
        prepared = model.prepare(x[:1])
        latency = time_calls(model.run, prepared, 1, protocol)
        result.update(runtime=model.info, samples=int(len(x)), metrics=metrics, breaches=breaches,
                      tolerance=manifest["tolerance"], latency=latency, host=manifest.get("host"),
                      ok=not breaches)
        return result, (EXIT_OK if not breaches else EXIT_PARITY)
    except BundleError as e:
        result["error"] = str(e)
        return result, e.exit_code


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description="Self-test a resnet-deploy bundle on this device.")
    p.add_argument("--bundle", default=here, help="bundle directory (default: this script's folder)")
    p.add_argument("--threads", type=int, default=None, help="runtime threads (default: the host's)")
    p.add_argument("--warmup-s", type=float, default=DEFAULT_PROTOCOL["warmup_s"])
    p.add_argument("--seconds", type=float, default=DEFAULT_PROTOCOL["seconds"])
    args = p.parse_args(argv)
    result, code = selftest(args.bundle, args.threads, {"warmup_s": args.warmup_s, "seconds": args.seconds})
    print(json.dumps(result, default=float))
    if code != EXIT_OK:
        why = result.get("error") or "; ".join("%s=%.6g (limit %s %g)" % (b["metric"], b["value"],
                                                                          "<=" if b["kind"] == "max" else ">=", b["limit"])
                                               for b in result.get("breaches", []))
        print("error: self-test failed: %s" % why, file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
