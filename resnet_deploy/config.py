"""Typed configuration: frozen dataclasses and str Enums, normalised and checked up front."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

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


class CalibMethod(str, enum.Enum):
    """How activation ranges are estimated from the calibration set (ONNX Runtime names)."""

    MINMAX = "minmax"
    ENTROPY = "entropy"
    PERCENTILE = "percentile"


E = TypeVar("E", bound=enum.Enum)


@dataclass(frozen=True)
class Option(Generic[E]):
    """One target's own export option, declared once by the target (Target.own_options): its
    flag, choices, default and help come from here, and so do the CLI's flag, the request's
    check, the manifest's record (config.options) and the reuse check."""

    name: str  # the keyword and, with dashes, the flag: io_dtype -> --io-dtype
    choices: type[E]
    default: E
    help: str

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def key(self) -> str:
        """Its key in the manifest's config record (record_value)."""
        return f"options.{self.name}"

    def parse(self, value: object) -> E:
        return _choice(self.choices, value, self.flag)  # type: ignore[return-value]


REPAIRS: dict[str, str] = {  # in the order they are applied: cheapest and function-preserving first
    "cle": "cross-layer equalization of per-channel scales (fp32 function unchanged)",
    "bias-correction": "int8 weight rounding's mean shift taken out of each conv's bias",
}


def parse_repairs(value: Any) -> tuple[str, ...]:
    """--repair 'cle,bias-correction' (or a sequence) -> names in application order."""
    if value is None or value == "" or value == ():
        return ()
    names = [v.strip().lower() for v in (value.split(",") if isinstance(value, str) else value)]
    bad = [n for n in names if n not in REPAIRS]
    if bad or not names:
        raise InputError(
            f"--repair {bad[0] if bad else value!r} is not a repair; choose from {', '.join(REPAIRS)} "
            "(comma-separated, e.g. --repair cle,bias-correction)."
        )
    return tuple(n for n in REPAIRS if n in names)


@dataclass(frozen=True)
class QuantConfig:
    """Options of int8 quantization that hold across backends (a backend's own are its Options).

    method:    activation-range estimation (ONNX Runtime); TFLite and NNCF use their own.
    per_channel: per-output-channel weight scales (all backends default to this for convs).
    float_nodes: backend op names kept in float (the accuracy budget's fallback, fallback.py);
               in each backend's own naming, resolved from Keras layer names.
    repairs:   repairs applied to the Keras model before every backend converts it
               (REPAIRS; exporting/repair.py applies them), in the order they are applied.
    """

    method: CalibMethod = CalibMethod.MINMAX
    per_channel: bool = True
    float_nodes: tuple[str, ...] = ()
    repairs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "float_nodes", tuple(self.float_nodes))
        object.__setattr__(self, "repairs", parse_repairs(self.repairs))
        object.__setattr__(self, "method", _choice(CalibMethod, self.method, "calibration method"))


@dataclass(frozen=True)
class ExportConfig:
    """Everything a Target.export() needs besides the model and the calibration set."""

    precision: Precision = Precision.INT8
    quant: QuantConfig = field(default_factory=QuantConfig)
    calib_size: int = 200
    opset: int = 17
    device: str = "host"  # a device profile (profiles.py); "host": this machine's
    # The targets' own options (Target.own_options) by name, as values; one not here is its default.
    options: tuple[tuple[str, str], ...] | dict[str, str] = ()

    def __post_init__(self) -> None:
        from resnet_deploy.backend.profiles import resolve

        object.__setattr__(self, "precision", Precision.parse(self.precision))
        object.__setattr__(self, "options", tuple(sorted(dict(self.options).items())))
        object.__setattr__(self, "device", resolve(self.device)[0].name)  # recorded and compared by profile name
        if isinstance(self.calib_size, bool) or int(self.calib_size) < 1:
            raise InputError(f"calib_size={self.calib_size} must be >= 1; pass --calib-size N with N >= 1.")
        if isinstance(self.opset, bool) or not 7 <= int(self.opset) <= 21:
            raise InputError(f"opset={self.opset} is outside 7..21; pick e.g. --opset 17.")

    def option(self, option: Option[E]) -> E:
        """A target's own option's value in this config (its default when not set)."""
        return option.parse(dict(self.options).get(option.name, option.default))


def config_record(config: ExportConfig) -> dict:
    """The export options as recorded in the manifest, Enums as their values."""
    from dataclasses import asdict

    def plain(v: object) -> object:
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, tuple):
            return [plain(x) for x in v]  # as the manifest's JSON reads back, so records compare equal
        return getattr(v, "value", v)

    record = plain(asdict(config))
    record["options"] = dict(config.options)  # type: ignore[index]
    return record  # type: ignore[return-value]


def record_value(record: dict, key: str) -> object:
    """A dotted key of a config record: record_value(r, "quant.io_dtype")."""
    for part in key.split("."):
        record = record.get(part) if isinstance(record, dict) else None  # type: ignore[assignment]
    return record
