"""TFLite / LiteRT: TFLiteConverter export (fp32, fp16, dynamic-range, full int8) and a runner
on ai_edge_litert, else tflite_runtime, else tf.lite."""

from __future__ import annotations

import warnings

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from resnet_deploy.store.artifact import Artifact, TensorSpec
from resnet_deploy.config import ExportConfig, Precision
from resnet_deploy.errors import ExportError, InputError, first_line
from resnet_deploy.portable.quantio import dequantize, quantize
from resnet_deploy.progress import Progress
from resnet_deploy.backend.runner import Runner
from resnet_deploy.backend.target import Graph, Probe, Target
from resnet_deploy.versions import versions
from resnet_deploy.targets.tflite.interpreter import load_interpreter_class
from resnet_deploy.targets.tflite.calibrate import record as calibration_record, tf_calibrator
from resnet_deploy.targets.tflite.lean import lean as lean_conversion
from resnet_deploy.targets.tflite.options import IO_DTYPE, OPTIONS, IODtype

MODEL_FILE = "model.tflite"
TFLITE_CONVERT_OPS = frozenset({"QUANTIZE", "DEQUANTIZE", "RESHAPE", "TRANSPOSE", "SQUEEZE", "PACK", "SHAPE"})


def _tensor_spec(detail: dict, layout: str) -> TensorSpec:
    scale, zero_point = detail["quantization"]
    quant = {"scale": float(scale), "zero_point": int(zero_point)} if scale else None
    return TensorSpec(
        name=detail["name"],
        dtype=np.dtype(detail["dtype"]).name,
        shape=[int(s) for s in detail["shape"]],
        layout=layout,
        quant=quant,
    )


def _configure(converter: Any, tf: Any, config: ExportConfig, calib: Any, progress: Progress) -> dict | None:
    """Set the converter up for the precision; return the manifest's quantization record."""
    p = config.precision
    if p is Precision.FP32:
        return None
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if p is Precision.FP16:
        converter.target_spec.supported_types = [tf.float16]
        return {"weights": "float16", "activations": "float32"}
    if p is Precision.DYNAMIC:
        return {"weights": "int8 per-channel", "activations": "float32 (dynamic-range)"}

    def representative_dataset():  # read in batches from the source: never all samples at once
        for x in progress.track(calib, total=len(calib), label="calibrating TFLite"):
            yield [x[None, ...]]

    converter.representative_dataset = representative_dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if config.option(IO_DTYPE) is IODtype.INT8:
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return {
        "weights": "int8 per-channel (symmetric)",
        "activations": "int8 per-tensor (asymmetric)",
        "io_dtype": config.option(IO_DTYPE).value,
        "calibration_samples": len(calib),
    }


def _convert_keeping_float(converter: Any, tf: Any, config: ExportConfig, nodes: tuple[str, ...]) -> bytes:
    """int8 with some ops left in float (selective quantization): calibrate only, then quantize
    with those nodes denylisted, as tf.lite's QuantizationDebugger does (the same two calls;
    the debugger's own model would carry NumericVerify ops and float I/O). Node names are the ops'
    output tensor names, as the fp32 artifact's layer map records them."""
    from tensorflow.lite.python import convert

    converter.experimental_mlir_quantizer = True
    converter._experimental_calibrate_only = True  # noqa: SLF001 - the debugger's documented path
    calibrated = converter.convert()
    interp_cls, _ = load_interpreter_class()
    have = {d["name"] for d in interp_cls(model_content=calibrated).get_tensor_details()}
    missing = [n for n in nodes if n not in have]
    if missing:  # the quantizer ignores names it does not know
        raise ExportError(
            f"the TFLite graph to quantize has no op {missing[0]!r} to keep in float; "
            "re-export fp32 so that its layer map matches this converter."
        )
    io = tf.int8 if config.option(IO_DTYPE) is IODtype.INT8 else tf.float32
    try:
        return convert.mlir_quantize(
            calibrated,
            fully_quantize=io == tf.int8,
            input_data_type=io,
            output_data_type=io,
            denylisted_nodes=list(nodes),
        )
    except Exception as e:  # noqa: BLE001 - the MLIR quantizer raises its own types
        raise ExportError(f"TFLite selective quantization failed: {first_line(e)}") from e


def keras_converter(tf: Any, model: Any) -> Any:
    """A TFLiteConverter on the model's inference function, frozen in memory. from_keras_model
    (TF 2.21, Keras 3) first writes the model out as a SavedModel and reads it back in: on
    ResNet-50 its float conversion took 15.3 s, this one 7.9 s, with the same ops in the same
    order and bit-identical outputs (only the I/O tensor names differ: input, Identity)."""
    from resnet_deploy._tf import inference_function

    fn, _ = inference_function(model)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], model)
    converter.experimental_lower_to_saved_model = False  # TF's own switch: no SavedModel round trip
    return converter


class TFLiteTarget(Target):
    """Export a Keras model with TFLiteConverter on its frozen inference function."""

    name = "tflite"
    precisions = (Precision.FP32, Precision.FP16, Precision.DYNAMIC, Precision.INT8)
    not_offered = {
        Precision.BF16: "the TFLite converter's reduced float is float16 only and XNNPACK has no bf16 "
        "convolutions on CPU; bf16 runs on OpenVINO"
    }
    description = "TFLite/LiteRT flatbuffer (mobile, edge; XNNPACK on CPU)"
    options = ("device",)
    own_options = OPTIONS

    def takes(self, config: ExportConfig, names: Sequence[str]) -> frozenset[str]:
        """ONNX Runtime's activation ranges, when the same export makes ONNX int8 first (calibration/ranges.py)."""
        return frozenset({"ranges"}) if config.precision is Precision.INT8 and "onnx" in names else frozenset()

    int8_keeps_fp32_names = True  # the int8 graph is converted/quantized from the fp32 one's names

    def probe(self, model_file: Path) -> Probe:
        from resnet_deploy.targets.tflite.probe import probe

        return probe(Path(model_file))

    def float_graph(self, fp32_file: Path) -> Graph:
        from resnet_deploy.targets.tflite.graph import float_graph

        return float_graph(Path(fp32_file))

    def tool_versions(self) -> dict[str, str]:
        import tensorflow as tf  # already loaded by export()

        return {"tensorflow": tf.__version__, **versions("keras", "ai-edge-litert", "tflite-runtime")}

    def export_impl(self, model: Any, out_dir: Path, config: ExportConfig, calib: Any, progress: Progress) -> Artifact:
        from resnet_deploy._tf import quiet_tf

        quiet_tf()
        import tensorflow as tf

        converter = keras_converter(tf, model)
        details: dict[str, Any] = {"quantization": _configure(converter, tf, config, calib, progress)}
        nodes = config.quant.float_nodes if config.precision is Precision.INT8 else ()
        interp_cls, _ = load_interpreter_class()
        measured = self.exchange.ranges.taken() if calib is not None else None
        with (
            tf_calibrator(interp_cls, measured=measured) as calibrator,
            lean_conversion(converter),
            warnings.catch_warnings(),
        ):
            # int8 I/O after post-training calibration: the input's scale comes from the calibration set;
            # quantized_input_stats, which TF warns are missing, are for quantization-aware models only
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs", category=UserWarning)
            (out_dir / MODEL_FILE).write_bytes(
                _convert_keeping_float(converter, tf, config, nodes) if nodes else converter.convert()
            )
        if config.precision is Precision.INT8:
            details["quantization"].update(calibration_record(calibrator))
        if nodes:
            details["quantization"]["float_nodes"] = list(nodes)
        interp = interp_cls(model_path=str(out_dir / MODEL_FILE))
        inputs = [_tensor_spec(d, "NHWC") for d in interp.get_input_details()]
        out_layout = "NHWC" if len(model.output_shape) == 4 else "NC"
        outputs = [_tensor_spec(d, out_layout) for d in interp.get_output_details()]
        return Artifact(self.name, config.precision, out_dir, [MODEL_FILE], inputs, outputs, details)

    def runner(self, artifact: Artifact, threads: int | None = None) -> "TFLiteRunner":
        return TFLiteRunner(artifact.model_file, threads=threads, precision=artifact.precision)


class TFLiteRunner(Runner):
    """Runs a .tflite file; quantizes float inputs and dequantizes outputs with the model's own
    scale and zero point, so callers always pass and get float32."""

    name = "tflite"
    _serving: Any = None  # one single-threaded interpreter per stream once serve() runs

    def activate_impl(self) -> None:
        from resnet_deploy._tf import captured_output

        interp_cls, self._source = load_interpreter_class()
        try:
            with captured_output():  # "INFO: Created TensorFlow Lite XNNPACK delegate" on every load
                self._interp = interp_cls(model_path=str(self.model_path), num_threads=self.threads)
                self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise InputError(
                f"{str(self.model_path)!r} is not a valid TFLite model ({first_line(e, 200)}); re-export it."
            ) from e
        ins, outs = self._interp.get_input_details(), self._interp.get_output_details()
        self.require_single_io(len(ins), len(outs))
        self._in, self._out = ins[0], outs[0]
        self.input_shape = (None, *(int(s) for s in self._in["shape"][1:]))

    def deactivate_impl(self) -> None:
        self._interp = None
        self._serving = None

    def serve(self, xs: np.ndarray) -> np.ndarray:
        """As throughput(): one single-threaded interpreter per stream, `streams` threads, each
        taking every streams-th sample (invoke releases the GIL)."""
        import threading

        from resnet_deploy._tf import captured_output

        self.check_input(xs[:1])
        if not self._serving:
            interp_cls, _ = load_interpreter_class()
            with captured_output():
                self._serving = [
                    interp_cls(model_path=str(self.model_path), num_threads=1) for _ in range(self.streams)
                ]
            for interp in self._serving:
                interp.allocate_tensors()
        outs: list[Any] = [None] * len(xs)

        def work(k: int) -> None:
            interp = self._serving[k]
            for i in range(k, len(xs), len(self._serving)):
                interp.set_tensor(self._in["index"], self.quantize_input(xs[i : i + 1]))
                interp.invoke()
                outs[i] = self.dequantize_output(interp.get_tensor(self._out["index"]))

        threads = [threading.Thread(target=work, args=(k,)) for k in range(len(self._serving))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return np.concatenate(outs)

    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        """float32 -> the model's input dtype, with its scale and zero point (identity for float I/O)."""
        scale, zp = self._in["quantization"]
        return quantize(x, scale, zp, self._in["dtype"])

    def dequantize_output(self, y: np.ndarray) -> np.ndarray:
        scale, zp = self._out["quantization"]
        return dequantize(y, scale, zp)

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        return self.dequantize_output(self.run_raw(self.quantize_input(x)))

    def prepare(self, x: np.ndarray) -> np.ndarray:
        return self.quantize_input(self.check_input(x))

    def _ensure_batch(self, n: int) -> None:
        if int(self._interp.get_input_details()[0]["shape"][0]) != n:
            self._interp.resize_tensor_input(self._in["index"], [n, *self.input_shape[1:]])
            self._interp.allocate_tensors()

    def run_raw(self, xq: np.ndarray) -> np.ndarray:
        """The runtime call alone, on already-quantized input (what latency measures)."""
        self._ensure_batch(xq.shape[0])
        self._interp.set_tensor(self._in["index"], xq)
        self._interp.invoke()
        return self._interp.get_tensor(self._out["index"])

    def throughput(self, x: np.ndarray, warmup_s: float, seconds: float, streams: int) -> dict[str, Any]:
        """One interpreter per stream (an Interpreter is not thread-safe), one thread each, run
        from `streams` Python threads at once (invoke releases the GIL)."""
        from resnet_deploy._tf import captured_output
        from resnet_deploy.measure.throughput import drive

        xq = self.quantize_input(self.check_input(x))
        interp_cls, _ = load_interpreter_class()

        def stream() -> Any:
            with captured_output():
                interp = interp_cls(model_path=str(self.model_path), num_threads=1)
            interp.resize_tensor_input(self._in["index"], list(xq.shape))
            interp.allocate_tensors()

            def request() -> None:
                interp.set_tensor(self._in["index"], xq)
                interp.invoke()

            return request

        return drive(
            [stream() for _ in range(streams)],
            int(x.shape[0]),
            warmup_s,
            seconds,
            {"how": f"{streams} interpreters, one per stream", "threads_per_stream": 1},
        )

    def profile(self, x: np.ndarray, warmup: int, runs: int) -> list[dict[str, Any]]:
        from resnet_deploy.backend.runner import ProfilingUnsupported

        raise ProfilingUnsupported(
            "LiteRT's Python API exposes no op profiler; its op profiler is the C++ "
            "benchmark_model tool, which the ai-edge-litert wheel does not ship"
        )

    def executed_ops(self, x: np.ndarray) -> list[dict[str, Any]]:
        """The model's ops and their kind from the file: an op computing int8 tensors is int8.
        (XNNPACK may fuse further; LiteRT does not report what it executes.)"""
        details = {d["index"]: d for d in self._interp.get_tensor_details()}
        out = []
        for op in self._interp._get_ops_details():  # noqa: SLF001 - LiteRT's only listing of ops
            name, dtype = op["op_name"], np.dtype(details[op["outputs"][0]]["dtype"])
            kind = (
                "convert"
                if name in TFLITE_CONVERT_OPS
                else "int8"
                if dtype in (np.int8, np.uint8, np.int16)
                else "float"
            )
            out.append({"name": details[op["outputs"][0]]["name"], "type": name, "kind": kind})
        return out

    def info(self) -> dict[str, Any]:
        in_dtype = np.dtype(self._in["dtype"]).name if getattr(self, "_interp", None) else None
        return {
            "runner": self.name,
            "interpreter": getattr(self, "_source", None),
            "threads": self.threads or "default",
            "precision": self.precision,
            "io_dtype": in_dtype,
            **versions("ai-edge-litert", "tflite-runtime"),
        }
