"""ONNX / ONNX Runtime: tf2onnx conversion (explicit input signature, NHWC kept), fp32, fp16 and
static int8 via onnxruntime.quantization, and OrtRunner."""

from __future__ import annotations

import functools
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from resnet_deploy.backend.exchange import Exchange, Int8Onnx
from resnet_deploy.calibration.ranges import PROBES, MeasuredRanges
from resnet_deploy._tf import INPUT_NAME
from resnet_deploy.store.artifact import Artifact, TensorSpec
from resnet_deploy.config import CalibMethod, ExportConfig, Precision, QuantConfig
from resnet_deploy.errors import ExportError, first_line
from resnet_deploy.exporting.memory import release
from resnet_deploy.progress import Progress
from resnet_deploy.backend.target import FileOps, Graph, Probe, Tail, Target
from resnet_deploy.versions import versions
from resnet_deploy.targets.onnx.calibrate import (
    measured_ranges,
    optimized_session,
    probe_prints,
    record as calibration_record,
    share_problem,
)
from resnet_deploy.targets.onnx.convert import keras_to_onnx
from resnet_deploy.targets.onnx.options import ONNX_FORMAT, OPTIONS, OnnxFormat
from resnet_deploy.targets.onnx.runner import OrtRunner

MODEL_FILE = "model.onnx"


@dataclass(frozen=True)
class OrtQuantChoice:
    """What ORT static quantization is asked to produce, and why."""

    fmt: str  # "qdq" or "qoperator"
    activation: str  # "uint8" or "int8"
    weight: str
    reduce_range: bool
    reason: str

    @property
    def name(self) -> str:
        return f"{self.fmt}-{'u8' if self.activation == 'uint8' else 's8'}s8"


def choose_quant_format(requested: OnnxFormat | str = OnnxFormat.AUTO, device: str = "host") -> OrtQuantChoice:
    """The fastest accurate format for the device profile (profiles.py), or the one the user asked for.

    On x86 ORT's default S8S8 QDQ leaves every conv that is not followed by a ReLU (those
    feeding the residual Add, the downsample convs) in fp32 between Q/DQ pairs; U8S8 fuses all
    of them: ResNet-18 S8S8 22 ms vs U8S8 6 ms p50 (fp32 17 ms) on an AMD EPYC with VNNI
    (`python benchmarks/onnx_formats.py` measures it on yours). Without VNNI, U8S8
    uses pmaddubsw, which can saturate: ORT's advice is reduce_range (7-bit weights) there.
    On ARM S8S8 is the fast pair (sdot).
    """
    from resnet_deploy.backend.profiles import ort_int8, resolve

    requested = ONNX_FORMAT.parse(requested)
    if requested is OnnxFormat.AUTO:
        profile, _ = resolve(device)
        act, reduce_range, why = ort_int8(profile)
        return OrtQuantChoice("qdq", act, "int8", reduce_range, f"device profile {profile.name}: {why}")
    fmt, pair = requested.value.split("-")
    act = "uint8" if pair.startswith("u8") else "int8"
    return OrtQuantChoice(fmt, act, "int8", False, "requested by the user")


class OrtDataReader:
    """Adapts a CalibrationSet to ORT's CalibrationDataReader (get_next/rewind), one sample per batch."""

    def __init__(self, samples: np.ndarray, input_name: str, progress: Progress, label: str) -> None:
        self.samples = samples
        self.input_name = input_name
        self.progress = progress
        self.label = label
        self.rewind()

    def rewind(self) -> None:
        self._it = iter(self.progress.track(self.samples, total=len(self.samples), label=self.label))

    def get_next(self) -> dict[str, np.ndarray] | None:
        x = next(self._it, None)
        return None if x is None else {self.input_name: np.ascontiguousarray(x[None, ...])}


def _io_specs(path: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    names = {init.name for init in m.graph.initializer}

    def spec(v: Any) -> TensorSpec:
        t = v.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name
        return TensorSpec(v.name, dtype, shape, "NHWC" if len(shape) == 4 else "NC")

    return [spec(v) for v in m.graph.input if v.name not in names], [spec(v) for v in m.graph.output]


def _check_nodes(path: Path, names: tuple[str, ...]) -> None:
    """ORT ignores nodes_to_exclude names it does not know: check them ourselves."""
    if names:
        import onnx

        have = {n.name for n in onnx.load(str(path), load_external_data=False).graph.node}
        missing = [n for n in names if n not in have]
        if missing:
            raise ExportError(
                f"the ONNX graph to quantize has no node {missing[0]!r} to keep in float; "
                "re-export fp32 so that its layer map matches this converter."
            )


def _finish(out_dir: Path, work: Path, precision: Precision, details: dict, quantization: dict | None) -> Artifact:
    shutil.rmtree(work, ignore_errors=True)
    details["quantization"] = quantization
    inputs, outputs = _io_specs(out_dir / MODEL_FILE)
    return Artifact(OnnxTarget.name, precision, out_dir, [MODEL_FILE], inputs, outputs, details)


def _offer(finish: Any, exchange: Exchange, quantization: dict) -> Artifact:
    """finish(quantization), offering the export's later targets the ranges ORT measured (or why
    there are none) and the int8 model (from_onnx.py)."""
    measured = quantization.pop("measured_ranges", None)
    if measured is not None:
        exchange.ranges.offer(MeasuredRanges.from_dict(measured) if isinstance(measured, dict) else measured)
    artifact = finish(quantization)
    if exchange.int8_onnx.wanted:  # OpenVINO's int8, when it is in this export (targets/openvino/from_onnx.py)
        exchange.int8_onnx.offer(Int8Onnx(artifact.model_file.read_bytes(), dict(quantization)))
    return artifact


def _record(choice: OrtQuantChoice, quant: QuantConfig, samples: int) -> dict:
    """What the manifest says about the quantization."""
    return {
        "format": choice.fmt,
        "activations": choice.activation,
        "weights": choice.weight,
        "name": choice.name,
        "per_channel": quant.per_channel,
        "reduce_range": choice.reduce_range,
        "calibration_method": quant.method.value,
        "calibration_samples": samples,
        "reason": choice.reason,
        "io_dtype": "float32",
        "float_nodes": list(quant.float_nodes),
        **calibration_record(),
    }


def quantize(
    fp32_path: str,
    out: str,
    samples: str,
    choice: OrtQuantChoice,
    quant: QuantConfig,
    progress: Progress,
    threads: int | None = None,
    share_ranges: bool = False,
) -> dict:
    """ORT static quantization of fp32_path into out, calibrated on the samples saved in `samples`
    (.npy) on `threads` threads (None: all cores). No TensorFlow: this is the Tail a worker
    process runs. share_ranges: the record's "measured_ranges" holds the calibration's ranges for
    another backend (calibration/ranges.py), or why it cannot."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = Path(fp32_path).with_name("pre.onnx")
    quant_pre_process(fp32_path, str(pre))  # shape inference + folding, as ORT recommends
    method = {
        CalibMethod.MINMAX: CalibrationMethod.MinMax,
        CalibMethod.ENTROPY: CalibrationMethod.Entropy,
        CalibMethod.PERCENTILE: CalibrationMethod.Percentile,
    }[quant.method]
    calib = np.load(samples, mmap_mode="r")
    _check_nodes(pre, quant.float_nodes)
    qtype = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
    cache = pre.with_name("ranges.json")
    why_not = share_problem(quant.method.value) if share_ranges else "not asked for"
    prints, why_not = (None, why_not) if why_not else probe_prints(pre, calib[:PROBES], threads)
    release()
    try:  # (Entropy/Percentile calibrators print histograms: converting() captures them)
        with optimized_session(threads):
            quantize_static(
                str(pre),
                out,
                OrtDataReader(calib, INPUT_NAME, progress, "calibrating ONNX"),
                quant_format=QuantFormat.QDQ if choice.fmt == "qdq" else QuantFormat.QOperator,
                per_channel=quant.per_channel,
                reduce_range=choice.reduce_range,
                activation_type=qtype[choice.activation],
                weight_type=qtype[choice.weight],
                calibrate_method=method,
                calibration_providers=["CPUExecutionProvider"],
                # (not CalibMaxIntermediateOutputs: its merged ranges differ from one pass's in
                # onnxruntime 1.32, measured on digits; ORT keeps each sample's per-tensor min/max)
                extra_options={"CalibTensorRangeSymmetric": False},
                nodes_to_exclude=list(quant.float_nodes),
                **({} if why_not else {"calibration_cache_path": str(cache)}),
            )
    except Exception as e:  # noqa: BLE001
        raise ExportError(f"onnxruntime static quantization failed: {first_line(e)}") from e
    record = _record(choice, quant, len(calib))
    if share_ranges:
        record["measured_ranges"] = why_not or measured_ranges(cache, prints, calib[:PROBES], len(calib))
    return record


class OnnxTarget(Target):
    """Keras -> ONNX (tf2onnx), then fp16 conversion or ORT static int8 quantization."""

    name = "onnx"
    precisions = (Precision.FP32, Precision.FP16, Precision.INT8)
    not_offered = {
        Precision.BF16: "ONNX Runtime's CPU provider has no bf16 kernels for these ops: Conv takes no bfloat16 "
        "in the ONNX standard, and MatMul/Add/Relu in bfloat16 are NOT_IMPLEMENTED (onnxruntime 1.32); "
        "bf16 runs on OpenVINO"
    }
    description = "ONNX file for ONNX Runtime (CPU; int8 as QDQ)"
    options = ("opset", "quant.method", "quant.per_channel", "device")
    own_options = OPTIONS

    int8_keeps_fp32_names = True  # the int8 graph is converted/quantized from the fp32 one's names

    def probe(self, model_file: Path) -> Probe:
        from resnet_deploy.targets.onnx.probe import probe

        return probe(Path(model_file))

    def float_graph(self, fp32_file: Path) -> Graph:
        from resnet_deploy.targets.onnx.graph import float_graph

        return float_graph(Path(fp32_file))

    def file_ops(self, model_file: Path) -> FileOps:
        from resnet_deploy.targets.onnx.graph import file_ops

        return file_ops(Path(model_file))

    def tool_versions(self) -> dict[str, str]:
        return versions("tf2onnx", "onnx", "onnxruntime", "keras")

    def has_tail(self, config: ExportConfig) -> bool:
        return config.precision is Precision.INT8

    def begin_impl(
        self, model: Any, out_dir: Path, config: ExportConfig, calib: Any, progress: Progress
    ) -> Artifact | Tail:
        """tf2onnx here; int8 returns ORT's quantization as a Tail (no TensorFlow, no model)."""
        p = config.precision
        out = out_dir / MODEL_FILE
        details: dict[str, Any] = {
            "onnx": {
                "opset": config.opset,
                "execution_precision": p.value,
                "execution_provider": "CPUExecutionProvider",
            },
            "quantization": None,
        }
        work = Path(tempfile.mkdtemp(prefix="onnx-", dir=out_dir))
        fp32_path = work / "fp32.onnx"
        details["onnx"]["tf2onnx"] = keras_to_onnx(model, fp32_path, config.opset)
        finish = functools.partial(_finish, out_dir, work, p, details)
        if p is Precision.INT8:
            samples = work / "calibration.npy"
            calib.save_npy(samples)  # batch by batch; the quantizer's process memory-maps it
            choice = choose_quant_format(config.option(ONNX_FORMAT), config.device)
            return Tail(
                "ONNX Runtime int8 quantization",
                quantize,
                {
                    "fp32_path": str(fp32_path),
                    "out": str(out),
                    "samples": str(samples),
                    "choice": choice,
                    "quant": config.quant,
                    "share_ranges": self.exchange.ranges.wanted,
                },
                functools.partial(_offer, finish, self.exchange),
            )
        if p is Precision.FP32:
            shutil.move(str(fp32_path), out)
            return finish(None)
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16

        onnx.save(convert_float_to_float16(onnx.load(str(fp32_path)), keep_io_types=True), str(out))
        return finish({"weights": "float16", "activations": "float16", "io_dtype": "float32"})

    def runner(self, artifact: Artifact, threads: int | None = None) -> "OrtRunner":
        return OrtRunner(artifact.model_file, threads=threads, precision=artifact.precision)
