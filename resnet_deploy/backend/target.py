"""Target base and registry.

A Target is small: `export()` is a template that checks the request, captures the converter's
chatter and turns its exceptions into one ExportError (quoting what it printed), then calls the
backend's own `export_impl()`. A target whose export ends in work that needs neither TensorFlow
nor the model (ONNX's int8 quantization) can return that work as a `Tail` from `begin()`: the
export schedule (exporting/schedule.py) runs it in a worker process beside the next target. Built-in
targets register through the same `register()` a plugin would; third-party targets are found
through the `resnet_deploy.targets` entry-point group. Targets are named by import path, so
nothing heavy loads until one is used.
"""

from __future__ import annotations

import contextlib
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from resnet_deploy.backend.exchange import Exchange
from resnet_deploy.config import ExportConfig, Option, Precision
from resnet_deploy.errors import DeployError, ExportError, InputError, converter_said, first_line
from resnet_deploy.progress import Progress

if TYPE_CHECKING:
    import numpy as np

    from resnet_deploy.calibration.dataset import CalibrationSet
    from resnet_deploy.store.artifact import Artifact
    from resnet_deploy.backend.runner import Runner

ENTRY_POINT_GROUP = "resnet_deploy.targets"

# What a target's optional hooks return (each target's own folder implements them).
Probe = Callable[["np.ndarray"], "dict[str, np.ndarray]"]  # x -> every intermediate float tensor by name
Graph = tuple[dict[str, str], dict[str, list[str]]]  # tensor -> producer op, tensor -> the ops that read it
FileOps = list[tuple[str, list[str], list[str]]]  # (op, input tensors, output tensors) in graph order


class Target:
    """One deployment format: export() a Keras model, and a runner() for the result."""

    name: str = ""
    precisions: tuple[Precision, ...] = ()
    description: str = ""
    # The shared ExportConfig options this target reads (config_record keys, e.g. "opset"), and
    # its own options (declared here once: the CLI's flags, the manifest and reuse read them).
    # An existing artifact is reused only if both match what a command asks for (reads()).
    options: tuple[str, ...] = ()
    own_options: tuple[Option, ...] = ()
    # Whether this target's export may run while another target's Tail runs in a worker process:
    # only targets whose peak memory leaves room for the worker's (exporting/schedule.py has the numbers).
    light: bool = False
    # Precisions this target does not offer, and why (what was measured), said when one is asked for.
    not_offered: dict[Precision, str] = {}
    # Whether the int8 artifact's tensors carry the names they have in the fp32 artifact (diagnose
    # then finds a damaged layer by its name; else by value on `float_twin`).
    int8_keeps_fp32_names: bool = False

    def reads(self) -> tuple[str, ...]:
        """Every config_record key this target's artifacts depend on."""
        return self.options + tuple(o.key for o in self.own_options)

    def check_config(self, config: ExportConfig) -> None:
        """Reject combinations this target cannot build, before any work starts."""
        if config.precision not in self.precisions:
            supported = ", ".join(p.value for p in self.precisions)
            why = self.not_offered.get(config.precision)
            raise InputError(
                f"Target {self.name!r} does not support precision={config.precision.value!r}"
                + (f" ({why})" if why else "")
                + f". Supported: {supported}."
            )

    def export(
        self,
        model: Any,
        out_dir: Path,
        config: ExportConfig,
        calib: "CalibrationSet | None" = None,
        progress: Progress | None = None,
        exchange: Exchange | None = None,
    ) -> "Artifact":
        """Write the artifact's files into out_dir (a fresh staging dir) and describe them."""
        progress = progress or Progress()
        started = self.begin(model, out_dir, config, calib, progress, exchange)
        if isinstance(started, Tail):
            return started.finish(self.run_tail(started, out_dir, config, progress))
        return started

    def begin(
        self,
        model: Any,
        out_dir: Path,
        config: ExportConfig,
        calib: "CalibrationSet | None" = None,
        progress: Progress | None = None,
        exchange: Exchange | None = None,
    ) -> "Artifact | Tail":
        """export(), except that a target may return the rest of its work as a Tail that needs
        neither TensorFlow nor the model (exporting/schedule.py runs it in a worker process).
        `exchange`: what the targets of this export hand each other (backend/exchange.py); the
        target reads it as self.exchange."""
        self.check_config(config)
        self.exchange = exchange if exchange is not None else Exchange()
        if config.precision.needs_calibration and calib is None:
            raise InputError(
                f"{config.precision.value} export needs calibration data; pass --calib digits|synthetic|DIR|FILE."
            )
        with converting(self.name, config.precision.value, out_dir):
            return self.begin_impl(
                model,
                Path(out_dir),
                config,
                calib if config.precision.needs_calibration else None,
                progress or Progress(),
            )

    def run_tail(self, tail: "Tail", out_dir: Path, config: ExportConfig, progress: Progress) -> dict:
        """A Tail run here, in this process, as export() runs its own."""
        with converting(self.name, config.precision.value, out_dir):
            return tail.fn(progress=progress, threads=None, **tail.kwargs)

    def takes(self, config: ExportConfig, names: Sequence[str]) -> frozenset[str]:
        """The offers (exchange.KINDS: "ranges", "int8_onnx") from an earlier target of the same
        export (`names`: all its targets) this target takes: it then runs after that target's
        tail, never beside it (exporting/schedule.py)."""
        return frozenset()

    def has_tail(self, config: ExportConfig) -> bool:
        """Whether begin() returns a Tail for this config (the export schedule puts such targets first)."""
        return False

    def begin_impl(
        self, model: Any, out_dir: Path, config: ExportConfig, calib: "CalibrationSet | None", progress: Progress
    ) -> "Artifact | Tail":
        """The backend's begin(): by default its whole export."""
        return self.export_impl(model, out_dir, config, calib, progress)

    def export_impl(
        self, model: Any, out_dir: Path, config: ExportConfig, calib: "CalibrationSet | None", progress: Progress
    ) -> "Artifact":
        """The backend's own export: out_dir exists and is empty, calib is set for int8."""
        raise NotImplementedError

    def runner(self, artifact: "Artifact", threads: int | None = None) -> "Runner":
        """A Runner that executes the artifact with this target's runtime."""
        raise NotImplementedError

    def tool_versions(self) -> dict[str, str]:
        """Versions of the converters and runtimes this target uses, for manifests."""
        return {}

    # Optional hooks: a target without one lacks that feature and says so (has()).

    def probe(self, model_file: Path) -> Probe | None:
        """Every intermediate float tensor of an artifact, for diagnose and the layer map."""
        return None

    def float_twin(self, int8_file: Path) -> Probe | None:
        """The int8 artifact's probe with its activation quantizers removed (the same tensor names),
        where a layer can be found by value however damaged int8 is (diagnose's layer map).
        Targets whose int8 artifact keeps the fp32 artifact's tensor names need none
        (`int8_keeps_fp32_names`)."""
        return None

    def float_graph(self, fp32_file: Path) -> Graph | None:
        """The fp32 file's op graph in the names the int8 export's `quant.float_nodes` take
        (keeping layers in float: the accuracy budget)."""
        return None

    def file_ops(self, model_file: Path) -> FileOps | None:
        """The file's ops, to map a runtime profile's ops to Keras layers (`bench --profile`)."""
        return None

    def has(self, hook: str) -> bool:
        """Whether this target implements an optional hook ("probe", "float_twin", "float_graph", "file_ops")."""
        return getattr(type(self), hook) is not getattr(Target, hook)


@dataclass
class Tail:
    """The rest of an export that needs neither TensorFlow nor the Keras model: `fn(progress=...,
    threads=..., **kwargs)` returns a dict of plain data (a module-level function, so that a
    worker process can import it; threads=None means all cores), and `finish(that dict)`, run
    back in the exporting process, the Artifact."""

    label: str
    fn: Callable[..., dict]
    kwargs: dict
    finish: Callable[[dict], "Artifact"]


@contextlib.contextmanager
def converting(name: str, precision: str, out_dir: Path) -> Iterator[list[str]]:
    """Around a converter's work: its chatter captured, its temporary files inside out_dir, and
    its exceptions turned into one ExportError quoting what it printed (a full disk stays an
    OSError naming the folder, for the CLI to say so)."""
    from resnet_deploy._tf import captured_output
    from resnet_deploy.store.fsutil import redirect_tempdir

    log: list[str] = []
    try:
        with captured_output() as log, redirect_tempdir(out_dir):  # a killed export leaves no temp behind
            yield log
    except DeployError:
        raise
    except OSError as e:
        if e.filename is not None and str(out_dir) in str(e.filename):
            raise  # writing into our own staging folder failed (full disk, permissions): not the converter
        _raise_if_disk_full(e, out_dir)
        raise ExportError(f"{name} {precision} export failed: {first_line(e)}") from e
    except Exception as e:  # noqa: BLE001 - converters raise many types; one error with context
        _raise_if_disk_full(e, out_dir)
        said = converter_said(log)
        raise ExportError(
            f"{name} {precision} export failed: {first_line(e)}"
            + (f" (converter: {said})" if said and said not in first_line(e) else "")
        ) from e


DISK_FULL_BYTES = 4 << 20  # less free space than this under a failed export: the disk, not the converter


def _raise_if_disk_full(e: BaseException, out_dir: Path) -> None:
    """Converters report a full disk in their own words ("basic_ios::clear: iostream error",
    an OSError without a file name, TensorFlow's own exceptions): ask the disk instead."""
    import errno
    import shutil

    try:
        free = shutil.disk_usage(out_dir).free
    except OSError:
        return
    if getattr(e, "errno", None) == errno.ENOSPC or free < DISK_FULL_BYTES:
        raise OSError(errno.ENOSPC, "No space left on device", str(out_dir)) from e


_REGISTRY: dict[str, str | Callable[[], Target]] = {}
_entry_points_loaded = False


def register(name: str, factory: str | Callable[[], Target]) -> None:
    """Register a target: a zero-arg factory (e.g. the class), or "module:Class" imported on first use."""
    _REGISTRY[name] = factory


def unregister(name: str) -> None:
    """Remove a registered target (a no-op if it is not registered)."""
    _REGISTRY.pop(name, None)


def _load_entry_points() -> None:
    """Register third-party targets from the `resnet_deploy.targets` entry-point group, once.
    Built-in names win: a plugin cannot silently replace tflite, onnx or openvino."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        _REGISTRY.setdefault(ep.name, ep.value)


def available_targets() -> list[str]:
    _load_entry_points()
    return list(_REGISTRY)


def get_target(name: str) -> Target:
    """Instantiate a registered target by name."""
    _load_entry_points()
    factory = _REGISTRY.get(name)
    if factory is None:
        raise InputError(f"Unrecognized target={name!r}. Supported targets are: {', '.join(_REGISTRY)} (or all).")
    if isinstance(factory, str):
        module, _, cls = factory.partition(":")
        try:
            return getattr(importlib.import_module(module), cls)()
        except (ImportError, AttributeError) as e:
            raise InputError(
                f"Target {name!r} ({factory}) cannot be loaded ({first_line(e)}); "
                "reinstall the package that provides it."
            ) from e
    return factory()


def targets_with(hook: str) -> list[str]:
    """The registered targets that implement an optional hook."""
    return [n for n in available_targets() if get_target(n).has(hook)]


def declared_options() -> dict[str, Option]:
    """The registered targets' own options by name. A target that cannot be loaded declares none
    here (using it says why); two targets declaring one name is the plugin author's error."""
    found: dict[str, Option] = {}
    for name in available_targets():
        try:
            target = get_target(name)
        except InputError:
            continue
        for option in target.own_options:
            if found.setdefault(option.name, option) is not option:
                raise InputError(f"Target {name!r} declares the option {option.flag}, which another target declares.")
    return found


def option_values(given: dict[str, object]) -> tuple[tuple[str, str], ...]:
    """Every declared option's value (the given one, else its default), checked against its choices."""
    known = declared_options()
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise InputError(f"Unknown target option {unknown[0]!r}; the targets take: {', '.join(sorted(known))}.")
    return tuple(sorted((n, o.parse(given.get(n, o.default)).value) for n, o in known.items()))


def parse_targets(value: str) -> list[str]:
    """'tflite', 'tflite,onnx' or 'all' -> validated list of target names."""
    names = [v.strip() for v in str(value).split(",") if v.strip()]
    if not names:
        raise InputError("No target given; pass --target tflite|onnx|openvino|all.")
    if names == ["all"]:
        return available_targets()
    known = available_targets()
    for n in names:
        if n not in known:
            raise InputError(f"Unrecognized target={n!r}. Supported targets are: {', '.join(known)} (or all).")
    return names


register("tflite", "resnet_deploy.targets.tflite:TFLiteTarget")
register("onnx", "resnet_deploy.targets.onnx:OnnxTarget")
register("openvino", "resnet_deploy.targets.openvino:OpenVINOTarget")
