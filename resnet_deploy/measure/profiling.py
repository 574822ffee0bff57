"""Where the time goes: per-op timings from each runtime, mapped to Keras layers.

The runtimes report the ops they execute, after their own fusions and with their own names:
ONNX Runtime's profiler names a fused node after the file's node plus "_token_N"; OpenVINO's
performance counters use the IR's op names, plus Reorder ops it inserts ("<op>_abcd_acdb_<op>").
Each executed op is matched to an op of the artifact's file (same name, else the longest file op
name it starts with), and each file op belongs to one Keras layer: walking the file graph back
from the tensor the artifact's layer map gives each layer (layermap.py), in Keras graph order,
every op not already claimed by an earlier layer is that layer's (its weights, its quantize and
dequantize ops, the convolution a batch norm was folded into). Time of ops that match no file op
(runtime-inserted) or that come after the last layer is listed as such, never dropped.

LiteRT has no op profiler in its Python API (ai-edge-litert's Interpreter and CompiledModel
expose none; the op profiler is the C++ benchmark_model tool, not in the wheel): its rows say so.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

RUNTIME_ADDED = "(added by the runtime)"
AFTER_LAST = "(after the last layer)"
TOP = 5  # layers per backend printed in the terminal

# What an executed op is: int8 arithmetic, float arithmetic, or moving/converting data.
KINDS = ("int8", "float", "convert")


def file_ops(target: str, path: Any) -> list[tuple[str, list[str], list[str]]]:
    """(op name, input tensors, output tensors) of the artifact's file, in graph order."""
    from resnet_deploy.backend.target import get_target

    ops = get_target(target).file_ops(Path(path))
    if ops is None:
        raise ValueError(f"no op graph reader for {target}")
    return ops


def layer_of_ops(ops: list[tuple[str, list[str], list[str]]], layer_map: dict) -> dict[str, str]:
    """File op name -> the Keras layer it computes (see the module doc)."""
    producer = {t: name for name, _, outs in ops for t in outs}
    inputs = {name: ins for name, ins, _ in ops}
    claimed: dict[str, str] = {}
    for layer, tensor in (layer_map.get("layers") or {}).items():
        stack = [producer.get(tensor.rsplit("#", 1)[0] if "#" in tensor else tensor)]
        while stack:
            op = stack.pop()
            if op is None or op in claimed:
                continue
            claimed[op] = layer
            stack.extend(producer.get(t) for t in inputs.get(op, []))
    return claimed


def _file_op(name: str, known: list[str]) -> str | None:
    """The file op an executed op comes from: same name, else the longest file name it starts with."""
    name = re.sub(r"_token_\d+$", "", name)
    if name in known:
        return name
    prefixes = [k for k in known if name.startswith(k)]
    return max(prefixes, key=len) if prefixes else None


FOLLOWERS = frozenset({"BatchNormalization", "ReLU", "Activation"})


def keras_units(model: Any) -> dict[str, str]:
    """Keras layer -> the layer whose unit it belongs to: a BatchNormalization, ReLU or Activation
    with one input joins its input's unit (conv -> bn -> relu is one row). Backends fuse such a
    chain into one op, each naming it after a different member (ORT after the ReLU, OpenVINO after
    the batch norm), so only units can be compared across backends."""
    from resnet_deploy.exporting.layermap import computing_layers, predecessors

    unit: dict[str, str] = {}
    for layer in computing_layers(model):
        preds = predecessors(layer)
        joins = type(layer).__name__ in FOLLOWERS and len(preds) == 1 and preds[0] in unit
        unit[layer.name] = unit[preds[0]] if joins else layer.name
    return unit


def by_layer(
    executed: list[dict], target: str, path: Any, layer_map: dict, units: dict[str, str] | None = None
) -> dict[str, Any]:
    """Per-op timings -> per-unit table (keras_units; per layer without units): ms per run, share
    of the total, ops and their kinds."""
    ops = file_ops(target, path)
    units = units or {}
    owner = {op: units.get(layer, layer) for op, layer in layer_of_ops(ops, layer_map).items()}
    known = sorted((name for name, _, _ in ops), key=len, reverse=True)
    order = list(dict.fromkeys(units.get(n, n) for n in (list(units) or list(layer_map.get("layers") or {}))))
    rows: dict[str, dict] = {}
    for op in executed:
        src = _file_op(op["name"], known)
        layer = owner.get(src, AFTER_LAST) if src is not None else RUNTIME_ADDED
        row = rows.setdefault(layer, {"layer": layer, "ms": 0.0, "ops": [], **{k: 0 for k in KINDS}})
        row["ms"] += op["ms"]
        row[op["kind"]] += 1
        row["ops"].append(f"{op['name']} ({op['type']})")
    total = sum(r["ms"] for r in rows.values()) or 1.0
    for r in rows.values():
        r["pct"] = 100.0 * r["ms"] / total
        r["folded_in"] = [k for k, v in units.items() if v == r["layer"] and k != r["layer"]]
    rank = {name: i for i, name in enumerate(order + [RUNTIME_ADDED, AFTER_LAST])}
    return {
        "supported": True,
        "total_ms": total,
        "layers": sorted(rows.values(), key=lambda r: rank.get(r["layer"], 1e9)),
        "ops": executed,
    }


def top_layers(result: dict, n: int = TOP) -> list[str]:
    """One line per backend: its n most expensive layers with their share of the time."""
    lines = []
    for name, b in result["backends"].items():
        if not b.get("supported"):
            lines.append(f"{name}: no per-op profile ({b.get('why')})")
            continue
        top = sorted(b["layers"], key=lambda r: -r["ms"])[:n]
        lines.append(
            f"{name}: "
            + ", ".join(f"{r['layer']} {r['pct']:.1f}%" for r in top)
            + f" (of {b['total_ms']:.2f} ms per run)"
        )
    return lines


def op_counts(ops: list[dict]) -> dict[str, Any]:
    """How many executed ops are int8, float and conversions, and the float ones' types."""
    from collections import Counter

    kinds = Counter(op["kind"] for op in ops)
    return {
        **{k: kinds.get(k, 0) for k in KINDS},
        "float_types": dict(Counter(op["type"] for op in ops if op["kind"] == "float")),
    }
