"""Frozen requests: one per library command. The CLI builds them from its options; the library
functions (pipeline.export, parity_run.run_parity, bench.run_bench, bundle.package,
deploy.deploy, report.write_report) each take one. Values are normalised and checked here (strings such as "onnx,tflite" or "fp32,int8" are
accepted for the tuple fields),
once, before any work starts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resnet_deploy.config import ExportConfig, Precision, QuantConfig, config_record, record_value
from resnet_deploy.inputs.contract import PreprocessOptions
from resnet_deploy.errors import InputError
from resnet_deploy.measure.latency import Protocol
from resnet_deploy.models.source import ModelRef
from resnet_deploy.values import positive_float, positive_int, readable_file, thread_count, writable

DEFAULT_OUT = Path("artifacts")

# ArtifactOptions field -> the config_record key it sets
_CONFIG_KEYS = {
    "calib_method": "quant.method",
    "repair": "quant.repairs",
    "opset": "opset",
    "calib_size": "calib_size",
    "device": "device",
}


def _config_default(key: str) -> Any:
    """The default of a config field ("quant.method"), as its value: config.py holds the one copy."""
    from dataclasses import fields

    cls = QuantConfig if key.startswith("quant.") else ExportConfig
    found = next(f for f in fields(cls) if f.name == key.rpartition(".")[2])
    return getattr(found.default, "value", found.default)


# Defaults for options a command was not given (the CLI's help texts read them). --calib has no
# fixed default: digits for the digits model, synthetic for an untrained built-in, and a user's
# model must name its own images (contract.data_source).
ARTIFACT_DEFAULTS: dict[str, Any] = {"seed": 0, **{name: _config_default(key) for name, key in _CONFIG_KEYS.items()}}


@dataclass(frozen=True)
class ArtifactOptions:
    """Export options a command may be given. None means "not given": a new export uses
    ARTIFACT_DEFAULTS (a target's own option: its declared default), and an existing artifact is
    reused whatever it was built with. A given option must match the existing artifact (for the
    targets that read it), or the command stops. target_options: the targets' own options
    (Target.own_options) by name, e.g. {"io_dtype": "float"}. repair: "cle,bias-correction" (or a
    tuple): repairs applied to the Keras model before every int8 conversion (exporting/repair.py)."""

    calib: str | None = None
    calib_size: int | None = None
    seed: int | None = None
    calib_method: str | None = None
    repair: str | tuple[str, ...] | None = None
    target_options: tuple[tuple[str, str], ...] | dict[str, str] = ()
    opset: int | None = None
    preprocess: PreprocessOptions = field(default_factory=PreprocessOptions)
    device: str | None = None

    def __post_init__(self) -> None:
        if self.calib_size is not None:
            object.__setattr__(self, "calib_size", positive_int(self.calib_size, "--calib-size"))
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0):
            raise InputError(f"--seed {self.seed!r} must be a whole number >= 0 (numpy's seeds are).")
        object.__setattr__(self, "target_options", tuple(sorted(dict(self.target_options).items())))
        self.config(Precision.INT8)  # validates every given value now, before any work

    def value(self, name: str) -> Any:
        v = getattr(self, name)
        return ARTIFACT_DEFAULTS[name] if v is None else v

    def config(self, precision: Precision | str) -> ExportConfig:
        from resnet_deploy.backend.target import option_values

        return ExportConfig(
            precision=Precision.parse(precision),
            quant=QuantConfig(method=self.value("calib_method"), repairs=self.value("repair")),
            options=option_values(dict(self.target_options)),
            calib_size=self.value("calib_size"),
            opset=self.value("opset"),
            device=self.value("device"),
        )

    def given_config(self) -> dict[str, Any]:
        """{config_record key: value} for the options that were given (normalised)."""
        record = config_record(self.config(Precision.INT8))
        keys = [key for name, key in _CONFIG_KEYS.items() if getattr(self, name) is not None]
        keys += [f"options.{name}" for name in dict(self.target_options)]
        return {key: record_value(record, key) for key in keys}

    @property
    def calibration_given(self) -> bool:
        return self.calib is not None or self.seed is not None


ALL: tuple[str, ...] = ("all",)  # every registered target, plugins included


def _targets(value: Any) -> tuple[str, ...]:
    """Names checked against the registry; "all" (or ALL) is every registered target."""
    from resnet_deploy.backend.target import parse_targets

    return tuple(parse_targets(value if isinstance(value, str) else ",".join(value)))


def _precisions(value: Any) -> tuple[Precision, ...]:
    items = value.split(",") if isinstance(value, str) else value
    items = [p.value if isinstance(p, Precision) else str(p).strip() for p in items]
    precs = tuple(Precision.parse(p) for p in items if p)
    if not precs:
        raise InputError("No precision given; pass --precision int8 (or a list such as fp32,int8).")
    return precs


def _check_supported(targets: tuple[str, ...], precisions: tuple[Precision, ...]) -> None:
    from resnet_deploy.backend.target import get_target

    for t in targets:
        for p in precisions:
            get_target(t).check_config(ExportConfig(precision=p))


@dataclass(frozen=True)
class ExportRequest:
    model: ModelRef = field(default_factory=ModelRef)
    targets: tuple[str, ...] = ("tflite",)
    precision: Precision = Precision.INT8  # one, or a comma list / tuple: then `precisions` holds them all
    options: ArtifactOptions = field(default_factory=ArtifactOptions)
    out: Path = DEFAULT_OUT
    budget: Any = None  # budget.Budget: int8 within an accuracy budget
    precisions: tuple[Precision, ...] = ()  # every precision asked for (set from `precision`)

    def __post_init__(self) -> None:
        object.__setattr__(self, "targets", _targets(self.targets))
        precs = self.precisions or _precisions(self.precision)
        object.__setattr__(self, "precisions", precs)
        object.__setattr__(self, "precision", precs[0])
        object.__setattr__(self, "out", writable(self.out, "--out", folder=True))
        _check_supported(self.targets, self.precisions)
        if self.budget is not None and self.precisions != (Precision.INT8,):
            raise InputError(
                f"--max-acc-drop applies to int8 exports (asked: {','.join(p.value for p in self.precisions)}); "
                "drop it or pass --precision int8."
            )
        if self.options.repair and Precision.INT8 not in self.precisions:
            raise InputError(
                f"--repair applies to int8 exports (asked: {','.join(p.value for p in self.precisions)}); "
                "drop it or add int8 to --precision."
            )
        if self.options.repair and self.budget is not None:
            raise InputError("--max-acc-drop tries the repairs itself (cheapest first); drop --repair.")


@dataclass(frozen=True)
class ParityRequest:
    model: ModelRef | None = field(default_factory=ModelRef)  # None: use the saved reference's
    targets: tuple[str, ...] = ALL
    precisions: tuple[Precision, ...] = (Precision.INT8,)
    data: str | None = None  # None: the model's default (contract.data_source)
    n: int | None = None  # None: every sample of the data (synthetic: calibration.dataset.SYNTHETIC_COUNT)
    threads: int | None = 2
    options: ArtifactOptions = field(default_factory=ArtifactOptions)
    out: Path = DEFAULT_OUT
    tolerance_overrides: dict = field(default_factory=dict)  # {Precision: {field: value}}
    reference_file: Path | None = None
    save_reference: Path | None = None
    report_json: Path | None = None
    allow_low_accuracy: bool = False
    cluster: str | None = None  # a Ray address, "auto" (RAY_ADDRESS or a running one) or "local"
    shards: int | None = None  # None: one per CPU of the cluster

    def __post_init__(self) -> None:
        object.__setattr__(self, "targets", _targets(self.targets))
        object.__setattr__(self, "precisions", _precisions(self.precisions))
        if self.n is not None:
            object.__setattr__(self, "n", positive_int(self.n, "--n"))
        if self.shards is not None:
            object.__setattr__(self, "shards", positive_int(self.shards, "--shards"))
        if self.shards is not None and self.cluster is None:
            raise InputError("--shards goes with --cluster; pass --cluster ADDRESS (or local).")
        if self.cluster is not None and self.reference_file is not None:
            raise InputError("--cluster runs the Keras reference on the cluster; drop --reference or --cluster.")
        if self.threads is not None:
            object.__setattr__(self, "threads", thread_count(self.threads))
        for name in ("out", "reference_file", "save_reference", "report_json"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, Path(getattr(self, name)))
        for name in ("save_reference", "report_json"):
            if getattr(self, name) is not None:
                writable(getattr(self, name), f"--{name.replace('_', '-')}", folder=False)
        _check_supported(self.targets, self.precisions)


BENCH_MODES = ("latency", "throughput")


@dataclass(frozen=True)
class BenchRequest:
    model: ModelRef = field(default_factory=ModelRef)
    targets: tuple[str, ...] = ALL
    precisions: tuple[Precision, ...] = (Precision.FP32, Precision.INT8)
    threads: tuple[int, ...] = (2,)
    batch: tuple[int, ...] = (1,)  # throughput mode takes several
    keras: bool = True
    protocol: Protocol = field(default_factory=Protocol)
    options: ArtifactOptions = field(default_factory=ArtifactOptions)
    out: Path = DEFAULT_OUT
    mode: str = "latency"  # or "throughput" (throughput.py)
    profile: bool = False  # also per-op timings mapped to Keras layers (profiling.py)

    def __post_init__(self) -> None:
        object.__setattr__(self, "targets", _targets(self.targets))
        object.__setattr__(self, "precisions", _precisions(self.precisions))
        if not self.threads:
            raise InputError("--threads: pass at least one thread count, e.g. 1,2.")
        object.__setattr__(self, "threads", tuple(thread_count(t) for t in self.threads))
        if self.mode not in BENCH_MODES:
            raise InputError(f"--mode {self.mode!r}: pass one of {', '.join(BENCH_MODES)}.")
        batches = self.batch if isinstance(self.batch, (tuple, list)) else (self.batch,)
        if not batches or (self.mode == "latency" and len(batches) > 1):
            raise InputError(
                f"--batch {','.join(map(str, batches)) or '(none)'}: latency mode takes one batch size; "
                "several (e.g. 1,8,32) are for --mode throughput."
            )
        object.__setattr__(self, "batch", tuple(positive_int(b, "--batch") for b in batches))
        self.model.check_fits(max(self.batch))
        object.__setattr__(self, "out", writable(self.out, "--out", folder=True))
        _check_supported(self.targets, self.precisions)


@dataclass(frozen=True)
class PackageRequest:
    model: ModelRef = field(default_factory=ModelRef)
    targets: tuple[str, ...] = ALL
    precision: Precision = Precision.INT8
    data: str | None = None  # None: the model's default (contract.data_source)
    n: int = 200
    threads: int = 2
    options: ArtifactOptions = field(default_factory=ArtifactOptions)
    out: Path = DEFAULT_OUT
    allow_low_accuracy: bool = False
    sign_key: Path | None = None  # sign each bundle with this EC private key (signing.py)
    tolerance_overrides: dict = field(default_factory=dict)  # {Precision: {field: value}}, as for parity

    def __post_init__(self) -> None:
        object.__setattr__(self, "targets", _targets(self.targets))
        object.__setattr__(self, "precision", Precision.parse(self.precision))
        if self.n is not None:
            object.__setattr__(self, "n", positive_int(self.n, "--n"))
        object.__setattr__(self, "threads", thread_count(self.threads))
        object.__setattr__(self, "out", writable(self.out, "--out", folder=True))
        _check_supported(self.targets, (self.precision,))


@dataclass(frozen=True)
class DeployRequest:
    bundle: Path
    to: str
    python: str | None = None
    threads: int | None = None
    warmup_s: float | None = None
    seconds: float | None = None
    identity: Path | None = None
    ssh_options: tuple[str, ...] = ()
    ssh_config: Path | None = None  # ssh -F: a config file of its own (Host aliases, ProxyJump, keys)
    connect_timeout: int = 10
    allow_profile_mismatch: bool = False
    verify_key: Path | None = None  # refuse a bundle this EC public key's owner did not sign
    inventory: Path | None = None  # an Ansible inventory: deploy to every host (fleet.py); `to` is the folder there
    limit: str | None = None  # an Ansible host pattern within the inventory
    max_parallel: int = 8  # hosts worked on at once (Ansible's forks)
    host_timeout: float = 900.0  # seconds for one host's self-test (inventory: resnet_deploy_timeout)

    def __post_init__(self) -> None:
        object.__setattr__(self, "bundle", Path(self.bundle))
        object.__setattr__(self, "max_parallel", positive_int(self.max_parallel, "--max-parallel"))
        object.__setattr__(self, "host_timeout", positive_float(self.host_timeout, "--host-timeout"))
        if not str(self.to).strip():
            raise InputError("--to is empty; pass a folder or ssh://user@host:port/path.")
        if self.python and (self.inventory is not None or self.to.startswith("ssh://")):
            from resnet_deploy.portable.names import UnsafeName, check_path

            try:
                check_path(self.python, "--python")  # it reaches the device's shell and Ansible
            except UnsafeName as e:
                raise InputError(f"{e}.") from None
        if self.inventory is not None:
            from resnet_deploy.portable.names import UnsafeName, check_folder

            object.__setattr__(self, "inventory", Path(self.inventory))
            if not self.to.startswith("/"):
                raise InputError(
                    f"--to {self.to!r}: with --inventory, --to is the absolute folder on every device "
                    "(e.g. /home/pi/models); a host can override it with resnet_deploy_path."
                )
            try:
                check_folder(self.to, "--to")
            except UnsafeName as e:
                raise InputError(f"{e}; choose another folder.") from None
        elif self.limit is not None:
            raise InputError("--limit selects hosts of an --inventory; add --inventory FILE or drop --limit.")
        if self.threads is not None:
            object.__setattr__(self, "threads", positive_int(self.threads, "--threads"))
        for name in ("warmup_s", "seconds"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, positive_float(getattr(self, name), f"--{name.replace('_', '-')}"))
        object.__setattr__(self, "connect_timeout", positive_int(self.connect_timeout, "--connect-timeout"))
        object.__setattr__(self, "ssh_options", tuple(self.ssh_options))
        if self.ssh_config is not None:
            object.__setattr__(self, "ssh_config", readable_file(self.ssh_config, "--ssh-config"))

    @property
    def ssh_args(self) -> tuple[str, ...]:
        """The user's ssh settings as OpenSSH arguments, for ssh, scp and Ansible alike: -F
        reaches the ssh that ProxyJump starts too (-i and -o do not)."""
        config = ("-F", str(Path(self.ssh_config).resolve())) if self.ssh_config else ()
        identity = ("-i", str(Path(self.identity).resolve())) if self.identity else ()
        return (*config, *identity, *[a for o in self.ssh_options for a in ("-o", o)])

    @property
    def protocol(self) -> dict[str, float]:
        """The self-test's protocol options that were given."""
        return {k: v for k, v in (("warmup_s", self.warmup_s), ("seconds", self.seconds)) if v is not None}


@dataclass(frozen=True)
class ReportRequest:
    model: str | None = None  # None: every model with results under `out`
    out: Path = DEFAULT_OUT
    dest: Path | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", writable(self.out, "--out", folder=True))
        if self.dest is not None:
            object.__setattr__(self, "dest", Path(self.dest))


@dataclass(frozen=True)
class DiagnoseRequest:
    model: ModelRef = field(default_factory=ModelRef)
    targets: tuple[str, ...] = ALL
    data: str | None = None  # None: the model's default (contract.data_source)
    n: int = 16
    sqnr_limit: float = 20.0
    options: ArtifactOptions = field(default_factory=ArtifactOptions)
    out: Path = DEFAULT_OUT

    def __post_init__(self) -> None:
        object.__setattr__(self, "targets", _targets(self.targets))
        if self.n is not None:
            object.__setattr__(self, "n", positive_int(self.n, "--n"))
        object.__setattr__(self, "sqnr_limit", positive_float(self.sqnr_limit, "--sqnr-limit"))
        object.__setattr__(self, "out", writable(self.out, "--out", folder=True))


@dataclass(frozen=True)
class GateRequest:
    """`gate`: compare this run (--current FILE, or parity + bench now) with a baseline record."""

    baseline: Path
    current: Path | None = None
    update_baseline: bool = False
    limits: dict = field(default_factory=dict)  # metric -> tolerance (gate.GATE_TOLERANCES' units)
    model: ModelRef = field(default_factory=ModelRef)
    targets: tuple[str, ...] = ALL
    precisions: tuple[Precision, ...] = (Precision.INT8,)
    data: str | None = None
    n: int | None = None  # None: every sample of the data (synthetic: calibration.dataset.SYNTHETIC_COUNT)
    threads: int = 2
    protocol: Protocol = field(default_factory=Protocol)
    options: ArtifactOptions = field(default_factory=ArtifactOptions)
    out: Path = DEFAULT_OUT

    def __post_init__(self) -> None:
        object.__setattr__(self, "baseline", Path(self.baseline))
        if self.update_baseline:
            writable(self.baseline, "--baseline", folder=False)
        if self.current is not None:
            object.__setattr__(self, "current", Path(self.current))
        object.__setattr__(self, "targets", _targets(self.targets))
        object.__setattr__(self, "precisions", _precisions(self.precisions))
        if self.n is not None:
            object.__setattr__(self, "n", positive_int(self.n, "--n"))
        object.__setattr__(self, "threads", thread_count(self.threads))
        object.__setattr__(self, "out", writable(self.out, "--out", folder=True))
        for metric, value in self.limits.items():
            if value is not None and not (float(value) >= 0 and float(value) != float("inf")):
                raise InputError(f"gate tolerance for {metric} is {value}; pass a number >= 0.")
