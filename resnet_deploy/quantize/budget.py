"""The accuracy budget: `export --precision int8 --max-acc-drop PTS --val DATA`.

Plain int8 first; if its accuracy on the labelled validation data is more than PTS points below
the Keras model's, the repairs (exporting/repair.py: cle, bias-correction, both; no cost at run
time) are tried, cheapest first. If none meets the budget, `diagnose` ranks the layers (on the
validation inputs) and the most harmful are kept in float, one more at a time (fallback.py turns
Keras layers into each backend's op names), until the budget holds or --max-float-layers is
reached (then exit 5 naming the best drop, the repairs and the layers tried). Validation samples
must not be calibration samples, and parity later refuses test data that is either (sample
fingerprints are recorded in the manifest). The manifest records the repairs, the float layers,
the accuracies and why, and the latency of plain and budgeted int8 measured side by side at
export."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from resnet_deploy.errors import InputError, ParityError
from resnet_deploy.inputs.samples import check_disjoint, sample_fingerprints
from resnet_deploy.progress import Progress

DEFAULT_MAX_FLOAT_LAYERS = 8
DIAGNOSE_SAMPLES = 16  # validation inputs the ranking is made on (diagnose's cost grows with it)
VAL_SIZE = 500  # validation samples read at most
COST_PROTOCOL: dict[str, Any] = {"warmup_runs": 3, "warmup_s": 0.2, "runs": 20, "seconds": 1.0, "max_runs": 2000}


class BudgetMissed(ParityError):
    """Even with the bounded number of float layers, int8 loses more than the budget."""


@dataclass(frozen=True)
class Budget:
    max_drop: float  # accuracy points
    val: str
    max_float_layers: int = DEFAULT_MAX_FLOAT_LAYERS

    def __post_init__(self) -> None:
        from resnet_deploy.values import positive_int

        drop = self.max_drop
        if (
            isinstance(drop, bool)
            or not isinstance(drop, (int, float))
            or not math.isfinite(drop)
            or not 0 <= drop < 100
        ):
            raise InputError(f"--max-acc-drop {drop!r} must be a number of accuracy points in [0, 100), e.g. 1.")
        object.__setattr__(self, "max_float_layers", positive_int(self.max_float_layers, "--max-float-layers"))


@dataclass
class Validation:
    """The labelled validation split, its Keras accuracy and fingerprints (one per export)."""

    x: np.ndarray
    y: np.ndarray
    keras_accuracy: float
    describe: dict
    fingerprints: list[str] = field(default_factory=list)
    calibration_fingerprints: list[str] = field(default_factory=list)

    def accuracy(self, runner: Any) -> float:
        with runner:
            return 100.0 * float(np.mean(runner.predict(self.x).argmax(1) == self.y))


def load_validation(budget: Budget, loaded: Any, calib: Any, progress: Progress) -> Validation:
    from resnet_deploy.calibration.dataset import from_spec
    from resnet_deploy.inputs.contract import check_reference_accuracy

    ds = from_spec(
        budget.val, loaded.model.input_shape, size=VAL_SIZE, digits_split="val", spec=loaded.spec, option="--val"
    )
    ds.requested = None  # VAL_SIZE is a cap, not a request
    for note in ds.notes("validation"):
        progress.log(note)
    x, y = ds.arrays()
    if y is None:
        raise InputError(
            f"--val {budget.val!r} has no labels; --max-acc-drop needs labelled validation data "
            "(an image folder with class subfolders, an .npz with y, or digits)."
        )
    calib_prints = sample_fingerprints(calib.arrays()[0])
    check_disjoint(x, {"calibration": calib_prints}, "validation")
    with progress.step(f"Keras accuracy on {len(x)} validation samples"):
        outputs = np.asarray(loaded.model.predict(x, batch_size=32, verbose=0))
    check_reference_accuracy(outputs, y, loaded.model, loaded.spec, allow=False)
    acc = 100.0 * float(np.mean(outputs.argmax(1) == y))
    return Validation(x, y, acc, ds.describe(), sample_fingerprints(x), calib_prints)


def _latency_cost(target: Any, plain: Path, final: Any) -> dict:
    """p50 of plain and budgeted int8, measured one after the other in this process (2 threads)."""
    from resnet_deploy.backend.cpu import cpu_info
    from resnet_deploy.measure.latency import Protocol, measure

    x = np.zeros((1, *final.inputs[0].shape[1:]), np.float32)
    p50 = {}
    for name, art in (("plain_int8", replace(final, path=plain)), ("budgeted", final)):
        with target.runner(art, threads=2) as r:
            p50[name] = round(measure(r, x, Protocol(**COST_PROTOCOL)).p50, 3)
    return {
        "p50_ms": p50,
        "ratio": round(p50["budgeted"] / p50["plain_int8"], 3),
        "threads": 2,
        "cpu": cpu_info().get("model"),
        "measured": "at export, side by side, batch 1",
    }


def _attempt(
    target: Any, loaded: Any, config: Any, calib: Any, val: Validation, work: Path, k: int | str, progress: Progress
) -> tuple[Any, float]:
    out = work / f"attempt-{k}"
    out.mkdir()
    artifact = target.export(loaded.model, out, config, calib, progress)
    if config.quant.repairs:
        artifact.details["repairs"] = loaded.repairs_record
    what = [f"{len(config.quant.float_nodes)} ops in float"] if config.quant.float_nodes else []
    what += [f"repaired: {', '.join(config.quant.repairs)}"] if config.quant.repairs else []
    with progress.step(
        f"{target.name} int8 accuracy on {len(val.y)} validation samples" + (f" ({'; '.join(what)})" if what else "")
    ):
        return artifact, val.accuracy(target.runner(artifact, threads=2))


REPAIR_LADDER: tuple[tuple[str, ...], ...] = (("cle",), ("bias-correction",), ("cle", "bias-correction"))
REPAIR_KEPT = 0.5  # share of int8's loss a repair must win back to stay under the float layers


class Repaired:
    """The model with each set of repairs, made once per export and shared by its targets."""

    def __init__(self, loaded: Any, calib: Any, progress: Progress) -> None:
        self.loaded, self.calib, self.progress = loaded, calib, progress
        self.made: dict[tuple[str, ...], Any] = {(): loaded}

    def __call__(self, repairs: tuple[str, ...]) -> Any:
        from resnet_deploy.exporting.pipeline import with_repairs

        if repairs not in self.made:
            self.made[repairs] = with_repairs(self.loaded, repairs, self.calib, self.progress)[0]
        return self.made[repairs]


def _repairs_first(
    target: Any, repaired: Repaired, config: Any, val: Validation, work: Path, record: dict, progress: Progress
) -> tuple[Any, float, tuple[str, ...]]:
    """Each repair set of the ladder in turn (no float layer, so no latency cost); the first that
    meets the budget, else the most accurate."""
    best: tuple[Any, float, tuple[str, ...]] | None = None
    for repairs in REPAIR_LADDER:
        cfg = replace(config, quant=replace(config.quant, repairs=repairs))
        art, acc = _attempt(target, repaired(repairs), cfg, repaired.calib, val, work, "-".join(repairs), progress)
        record["tried"].append({"repairs": list(repairs), "float_layers": [], "accuracy": round(acc, 3)})
        if best is None or acc > best[1]:
            best = (art, acc, repairs)
        if val.keras_accuracy - acc <= record["max_drop_pts"]:
            return art, acc, repairs
    assert best is not None
    return best


def _ranked(target: Any, loaded: Any, fp32: Any, current: Any, val: Validation, progress: Progress) -> list[str]:
    """Candidates, most harmful first: the layers below the SQNR limit in graph order (the earliest
    damage first: a layer after it may only look damaged), then the rest by the error each adds."""
    from resnet_deploy.quantize.diagnose import DEFAULT_SQNR_LIMIT, diagnose_backend

    x = val.x[:DIAGNOSE_SAMPLES]
    with progress.step(f"diagnosing {target.name}/int8 on {len(x)} validation samples"):
        d = diagnose_backend(loaded.model, target.name, fp32, current.model_file, x, DEFAULT_SQNR_LIMIT)
    order = [layer.name for layer in loaded.model.layers]
    below = sorted((lay["layer"] for lay in d["layers"] if lay["sqnr_db"] < DEFAULT_SQNR_LIMIT), key=order.index)
    return list(dict.fromkeys([*below, *d["ranked"]]))


def _next_layer(target: Any, fp32: Any, ranked: list[str], layers: list[str], nodes: tuple) -> tuple[str, tuple] | None:
    """The most harmful layer whose fallback keeps more ops in float than we already do."""
    from resnet_deploy.quantize.fallback import float_nodes

    for layer in ranked:
        if layer not in layers:
            more = float_nodes(target.name, fp32, [*layers, layer])
            if more != nodes:
                return layer, more
    return None


def _greedy(
    target: Any,
    loaded: Any,
    config: Any,
    calib: Any,
    budget: Budget,
    val: Validation,
    fp32: Any,
    plain: tuple,
    work: Path,
    record: dict,
    progress: Progress,
) -> tuple[Any, float]:
    """Keep one more layer in float at a time, the most harmful by a fresh diagnosis of the
    current model (an outlier breaks every layer after it; each fix shows the next), until the
    budget holds or max_float_layers is reached."""
    best_acc, current, nodes = plain[1], plain[0], ()
    layers: list[str] = []
    while len(layers) < budget.max_float_layers:
        ranked = _ranked(target, loaded, fp32, current, val, progress)
        step = _next_layer(target, fp32, ranked, layers, nodes)
        if step is None:
            if not layers:
                raise InputError(
                    f"the {target.name} int8 model has no quantized layer that could be kept in float; "
                    "export fp32 or fp16 instead."
                )
            break
        layers.append(step[0])
        nodes = step[1]
        cfg = replace(config, quant=replace(config.quant, float_nodes=nodes))
        current, acc = _attempt(target, loaded, cfg, calib, val, work, len(layers), progress)
        tried = {"repairs": list(config.quant.repairs), "float_layers": list(layers), "accuracy": round(acc, 3)}
        record["tried"].append(tried)
        if acc > best_acc:
            best_acc = acc
        if val.keras_accuracy - acc <= budget.max_drop:
            record.update(float_layers=list(layers), float_nodes=list(nodes))
            return current, acc
    _missed(target.name, val, best_acc, record, budget)


def _repair_then_float(
    target: Any,
    repaired: Repaired,
    config: Any,
    budget: Budget,
    val: Validation,
    fp32: Any,
    plain: tuple,
    work: Path,
    record: dict,
    progress: Progress,
) -> tuple[Any, float]:
    """Repairs first (free at run time); float layers only if they are not enough, on top of the
    repair that helped most if it won back at least half of what int8 lost (REPAIR_KEPT), else of
    plain int8 (a repair that barely moved accuracy did not find this model's problem, and the
    float search diagnoses the plain model better: on the hold-out fixture with a Flatten, CLE's
    +0.6 points left OpenVINO's search stuck 1.1 points short where plain int8's met the budget)."""
    art, acc, repairs = _repairs_first(target, repaired, config, val, work, record, progress)
    if acc - plain[1] < REPAIR_KEPT * (val.keras_accuracy - plain[1]) and val.keras_accuracy - acc > budget.max_drop:
        art, acc, repairs = plain[0], plain[1], ()
    record["repairs"] = list(repairs)
    if val.keras_accuracy - acc <= budget.max_drop:
        return art, acc
    cfg = replace(config, quant=replace(config.quant, repairs=repairs))
    return _greedy(
        target, repaired(repairs), cfg, repaired.calib, budget, val, fp32, (art, acc), work, record, progress
    )


def _reason(record: dict) -> str:
    """Why the artifact is what it is, in one sentence for the manifest."""
    lost = record["keras_accuracy"] - record["plain_int8_accuracy"]
    if not record["repairs"] and not record["float_layers"]:
        return "plain int8 meets the budget"
    parts = [f"plain int8 lost {lost:.2f} points"]
    if record["repairs"]:
        parts.append(f"repaired with {', '.join(record['repairs'])} (tried before any float layer: no latency cost)")
    if record["float_layers"]:
        parts.append(
            f"kept {len(record['float_layers'])} layers in float, each the most harmful by a fresh diagnosis, "
            f"until the drop was within {record['max_drop_pts']} points"
        )
    return "; ".join(parts)


def search(
    target: Any,
    repaired: Repaired,
    config: Any,
    budget: Budget,
    val: Validation,
    fp32: Any,
    staging: Path,
    progress: Progress,
) -> Any:
    """Export `target` int8 into `staging` within the budget (plain, repaired, then with float
    layers), or raise BudgetMissed."""
    import shutil
    import tempfile

    from resnet_deploy.store.fsutil import owned_prefix

    work = Path(tempfile.mkdtemp(prefix=owned_prefix("budget", "work"), dir=staging.parent))
    try:
        plain = _attempt(target, repaired.loaded, config, repaired.calib, val, work, 0, progress)
        record: dict[str, Any] = {
            "max_drop_pts": budget.max_drop,
            "validation": val.describe,
            "keras_accuracy": round(val.keras_accuracy, 3),
            "plain_int8_accuracy": round(plain[1], 3),
            "repairs": [],
            "float_layers": [],
            "float_nodes": [],
            "tried": [],
            "sample_fingerprints": {"calibration": val.calibration_fingerprints, "validation": val.fingerprints},
        }
        best, acc = plain
        if val.keras_accuracy - acc > budget.max_drop:
            best, acc = _repair_then_float(target, repaired, config, budget, val, fp32, plain, work, record, progress)
            record["latency"] = _latency_cost(target, plain[0].path, best)
        record.update(accuracy=round(acc, 3), drop_pts=round(val.keras_accuracy - acc, 3), reason=_reason(record))
        for f in best.files:
            shutil.move(str(best.path / f), str(staging / f))
        best.path = staging
        best.details["accuracy_budget"] = record
        return best
    finally:
        shutil.rmtree(work, ignore_errors=True)


def export_within(req: Any, progress: Progress | None = None) -> Any:
    """`export --max-acc-drop`: validation data checked once, each target's fp32 artifact (reused
    or exported), then the export engine with `search` making each int8 artifact."""
    from resnet_deploy.backend.target import get_target
    from resnet_deploy.calibration.dataset import check_calib_value
    from resnet_deploy.errors import DeployError
    from resnet_deploy.exporting.pipeline import ensure_artifact, export_model, load
    from resnet_deploy.store.workspace import Workspace

    progress, budget = progress or Progress(), req.budget
    check_calib_value(budget.val, "--val")
    config = req.options.config(req.precision)
    for name in req.targets:
        get_target(name).check_config(config)
    loaded, ws = load(req.model, req.options, progress), Workspace(req.out)
    calib = loaded.calibration()
    val = load_validation(budget, loaded, calib, progress)
    fp32, failed = {}, {}
    for name in req.targets:
        try:
            fp32[name] = ensure_artifact(ws, loaded, name, "fp32", progress)
        except DeployError as e:  # this target cannot go on; the others do
            failed[name] = e

    repaired = Repaired(loaded, calib, progress)

    def make(target: Any, staging: Path, progress: Progress) -> Any:
        return search(target, repaired, config, budget, val, fp32[target.name], staging, progress)

    result = export_model(loaded, [n for n in req.targets if n in fp32], config, ws, progress, make)
    result.failures.update(failed)
    return result


def met_line(label: str, record: dict[str, Any]) -> str:
    """What the terminal says of a budgeted artifact that met its budget."""
    n = len(record.get("float_layers") or [])
    return (
        f"budget met: {label} is {record['drop_pts']:.2f} points below Keras (budget {record['max_drop_pts']}): "
        f"Keras {record['keras_accuracy']:.2f}%, int8 {record['accuracy']:.2f}% on the validation data, "
        + (
            f"repaired with {', '.join(record['repairs'])}, "
            if record.get("repairs")
            else "plain int8, "
            if not n
            else ""
        )
        + ("no layer in float" if not n else f"{n} layers in float ({', '.join(record['float_layers'])})")
    )


def _missed(target: str, val: Validation, best_acc: float, record: dict, budget: Budget) -> NoReturn:
    tried = record["tried"][-1]["float_layers"] if record["tried"] else []
    repairs = ", ".join(record.get("repairs") or []) or "none helped"
    raise BudgetMissed(
        f"{target} int8 misses the accuracy budget: best drop {val.keras_accuracy - best_acc:.2f} points "
        f"(budget {budget.max_drop}) with repairs ({repairs}) and {len(tried)} layers in float "
        f"({', '.join(tried) or 'none'}); "
        "raise --max-acc-drop or --max-float-layers, or export fp16/fp32."
    )
