"""The least code that loads each artifact with nothing but its runtime. The host runners
(targets/*.py) call the same loaders, so both sides load models the same way."""
import os

import numpy as np

from .constants import EXIT_RUNTIME
from .integrity import BundleError
from .quantio import dequantize, quantize


# ONNX Runtime's telemetry (1.32 on Linux) writes a session file (.ses) into TMPDIR when it is
# imported and sends usage events: nothing of ours may be left behind, and devices run offline.
# Off unless the user's environment says otherwise.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")


class RuntimeMismatch(Exception):
    """A runtime is missing or did not do what it was asked (e.g. ignored a precision hint)."""

    exit_code = EXIT_RUNTIME


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


def ort_session(path, threads, profile_prefix=None):
    """ONNX Runtime session on the CPU provider, full graph optimisation, `threads` intra-op
    threads (None: ORT's default of all cores); `profile_prefix`: ORT's profiler writes there."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    if profile_prefix:
        so.enable_profiling, so.profile_file_prefix = True, str(profile_prefix)
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def ov_compile(core, model, batch, threads, precision_hint, performance_hint="LATENCY", perf_count=False):
    """Compile an OpenVINO model for CPU at a static batch with an explicit precision hint.
    Returns (compiled model, what it really uses); the caller decides what a mismatch means."""
    shape = [d.get_length() for d in list(model.inputs[0].get_partial_shape())[1:]]
    model.reshape([batch] + shape)
    cfg = {"PERFORMANCE_HINT": performance_hint, **({"PERF_COUNT": True} if perf_count else {})}
    if threads:
        cfg["INFERENCE_NUM_THREADS"] = int(threads)
    if precision_hint:
        cfg["INFERENCE_PRECISION_HINT"] = precision_hint
    compiled = core.compile_model(model, "CPU", cfg)
    actual = {"inference_precision": str(compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()),
              "threads": int(compiled.get_property("INFERENCE_NUM_THREADS")),
              "streams": int(compiled.get_property("NUM_STREAMS"))}
    return compiled, actual


def precision_mismatch(where, got, wanted):
    """The one message for a runtime that ignored the precision it was asked for."""
    return RuntimeMismatch("OpenVINO compiled %s in %s, not the requested %s; this CPU plugin ignores the hint, so "
                           "results would not be what the artifact promises. Use an OpenVINO release that honours "
                           "INFERENCE_PRECISION_HINT." % (where, got, wanted))


class TFLiteModel:
    def __init__(self, path, threads):
        try:
            interp_cls, self.source, version = tflite_interpreter_class()
        except ImportError:
            raise RuntimeMismatch("no TFLite runtime: install ai-edge-litert or tflite-runtime") from None
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
            raise RuntimeMismatch("no ONNX runtime: install onnxruntime") from None
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
            raise RuntimeMismatch("no OpenVINO runtime: install openvino") from None
        self.ov = ov
        self.core = ov.Core()
        self.model = self.core.read_model(path)
        self.name = os.path.basename(path)
        self.threads, self.hint = threads, precision_hint
        self.batch = None
        self.info = {"runtime": "openvino", "version": ov.__version__}

    def _compile(self, batch):
        compiled, actual = ov_compile(self.core, self.model, batch, self.threads, self.hint)
        if self.hint and actual["inference_precision"] != self.hint:
            raise precision_mismatch(self.name, actual["inference_precision"], self.hint)
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
    """The mini-runner for the bundle's target."""
    target, model_file = manifest["target"], os.path.join(bundle, manifest["model_file"])
    if target == "tflite":
        return TFLiteModel(model_file, threads)
    if target == "onnx":
        return OrtModel(model_file, threads)
    if target == "openvino":
        return OVModel(model_file, threads, manifest.get("openvino", {}).get("execution_precision"))
    raise BundleError("unknown target %r in the manifest; re-run `package`." % target)


def predict(model, x):
    """Run every sample through the mini-runner, one at a time, in order."""
    outs = []
    for i in range(len(x)):
        outs.append(model.finish(model.run(model.prepare(x[i:i + 1]))))
    return np.concatenate(outs, axis=0)
