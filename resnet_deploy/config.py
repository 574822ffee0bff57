"""Typed configuration: frozen dataclasses and str Enums, normalised and checked up front."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from resnet_deploy.errors import InputError


def _choice(enum_cls: type[enum.Enum], value: object, what: str) -> enum.Enum:
    """Turn a user string into an Enum member, or raise an error that lists the choices."""
    if isinstance(value, enum_cls):
        return value
    try:
        return enum_cls(str(value).lower())
    except ValueError:
        choices = ", ".join(m.value for m in enum_cls)
        raise InputError(f"Unrecognized {what}={value!r}. Supported: {choices}.") from None


class Precision(str, enum.Enum):
    """What the artifact's weights and arithmetic are stored and run in."""

    FP32 = "fp32"
    FP16 = "fp16"
    BF16 = "bf16"  # fp32 weights, bf16 arithmetic where the CPU computes it (OpenVINO on AVX512-BF16/AMX)
    DYNAMIC = "dynamic"  # int8 weights, float activations (no calibration needed)
    INT8 = "int8"  # int8 weights and activations, calibrated

    @classmethod
    def parse(cls, value: object) -> "Precision":
        return _choice(cls, value, "precision")  # type: ignore[return-value]

    @property
    def needs_calibration(self) -> bool:
        return self is Precision.INT8


class IODtype(str, enum.Enum):
    """Dtype of a quantized model's inputs and outputs."""

    INT8 = "int8"
    FLOAT = "float"


class CalibMethod(str, enum.Enum):
    """How activation ranges are estimated from the calibration set (ONNX Runtime names)."""

    MINMAX = "minmax"
    ENTROPY = "entropy"
    PERCENTILE = "percentile"


class OnnxFormat(str, enum.Enum):
    """ONNX Runtime int8 format and activation/weight types; auto picks for the CPU (targets/onnx/__init__.py)."""

    AUTO = "auto"
    QDQ_U8S8 = "qdq-u8s8"
    QDQ_S8S8 = "qdq-s8s8"
    QOPERATOR_U8S8 = "qoperator-u8s8"


class OpenVinoInt8(str, enum.Enum):
    """Where OpenVINO's int8 comes from (targets/openvino/from_onnx.py): auto converts the ONNX
    int8 model of the same export when there is one (one calibration pass), else runs NNCF."""

    AUTO = "auto"
    NNCF = "nncf"


@dataclass(frozen=True)
class QuantConfig:
    """Options of int8 quantization that hold across backends.

    io_dtype:  TFLite only: int8 I/O (the default, what microcontrollers and NPUs want) or
               float I/O with quantize/dequantize ops inside the model.
    method:    activation-range estimation (ONNX Runtime); TFLite and NNCF use their own.
    per_channel: per-output-channel weight scales (all backends default to this for convs).
    onnx_format: "auto" picks the fastest format/type pair for this CPU; see targets/onnx/__init__.py.
    openvino_int8: "auto" converts the same export's ONNX int8 (QDQ) model; "nncf" always quantizes
               with NNCF (targets/openvino/from_onnx.py says when and why).
    float_nodes: backend op names kept in float (the accuracy budget's fallback, fallback.py);
               in each backend's own naming, resolved from Keras layer names.
    """

    io_dtype: IODtype = IODtype.INT8
    method: CalibMethod = CalibMethod.MINMAX
    per_channel: bool = True
    onnx_format: OnnxFormat = OnnxFormat.AUTO
    openvino_int8: OpenVinoInt8 = OpenVinoInt8.AUTO
    float_nodes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "float_nodes", tuple(self.float_nodes))
        object.__setattr__(self, "io_dtype", _choice(IODtype, self.io_dtype, "io dtype"))
        object.__setattr__(self, "method", _choice(CalibMethod, self.method, "calibration method"))
        object.__setattr__(self, "onnx_format", _choice(OnnxFormat, self.onnx_format, "onnx format"))
        object.__setattr__(self, "openvino_int8", _choice(OpenVinoInt8, self.openvino_int8, "openvino int8 source"))


@dataclass(frozen=True)
class ExportConfig:
    """Everything a Target.export() needs besides the model and the calibration set."""

    precision: Precision = Precision.INT8
    quant: QuantConfig = field(default_factory=QuantConfig)
    calib_size: int = 200
    opset: int = 17
    device: str = "host"  # a device profile (profiles.py); "host": this machine's

    def __post_init__(self) -> None:
        from resnet_deploy.backend.profiles import resolve

        object.__setattr__(self, "precision", Precision.parse(self.precision))
        object.__setattr__(self, "device", resolve(self.device)[0].name)  # recorded and compared by profile name
        if isinstance(self.calib_size, bool) or int(self.calib_size) < 1:
            raise InputError(f"calib_size={self.calib_size} must be >= 1; pass --calib-size N with N >= 1.")
        if isinstance(self.opset, bool) or not 7 <= int(self.opset) <= 21:
            raise InputError(f"opset={self.opset} is outside 7..21; pick e.g. --opset 17.")


def config_record(config: ExportConfig) -> dict:
    """The export options as recorded in the manifest, Enums as their values."""
    from dataclasses import asdict

    def plain(v: object) -> object:
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return getattr(v, "value", v)

    return plain(asdict(config))  # type: ignore[return-value]


def record_value(record: dict, key: str) -> object:
    """A dotted key of a config record: record_value(r, "quant.io_dtype")."""
    for part in key.split("."):
        record = record.get(part) if isinstance(record, dict) else None  # type: ignore[assignment]
    return record
