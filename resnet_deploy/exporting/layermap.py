"""Keras layer <-> the tensor that carries its output in a backend's artifact.

Names do not survive every converter (OpenVINO's transformations rename ops `Transpose_9859`;
tf2onnx names a conv after its ReLU, or `Conv__97`; TFLite joins fused ops with ';'), so the map
is made by value, the same way on every backend: run Keras with every layer's output exposed
and the artifact with every intermediate float tensor exposed on the same probe input, and give
each Keras layer the tensor (same element count, NHWC or NCHW) that best matches its output.
A Keras layer with no tensor of its own was fused away (a BatchNormalization folded into its
convolution, a Conv2D whose output only exists after the BN/ReLU fused with it); it is listed
as folded, with the layer that carries it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from resnet_deploy.errors import InputError

MIN_PER_CHANNEL = 4  # values per channel below which channels are not weighted apart (one sample's logits)
MIN_MATCH_COSINE = 0.9  # an int8 tensor this close to a Keras output is that output (others score far lower)


def computing_layers(model: Any) -> list[Any]:
    """The layers that compute something, in graph order (InputLayer excluded)."""
    return [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]


def predecessors(layer: Any) -> list[str]:
    """Names of the layers whose outputs feed this one."""
    nodes = getattr(layer, "_inbound_nodes", None) or []
    return [p.operation.name for p in nodes[0].parent_nodes] if nodes else []


def successors(model: Any) -> dict[str, list[str]]:
    """Each computing layer's consumers, in graph order (the inverse of `predecessors`)."""
    out: dict[str, list[str]] = {layer.name: [] for layer in computing_layers(model)}
    for layer in computing_layers(model):
        for p in predecessors(layer):
            if p in out:
                out[p].append(layer.name)
    return out


def keras_probe(model: Any) -> Any:
    """A function x -> {layer name: its output on x} for every computing layer (built once)."""
    import keras

    layers = computing_layers(model)
    probe = keras.Model(model.inputs, [layer.output for layer in layers])

    def run(x: np.ndarray) -> dict[str, np.ndarray]:
        outs = probe([x], training=False)  # the structure it was built with (a list): else Keras warns on every call
        return {layer.name: np.asarray(o, dtype=np.float32) for layer, o in zip(layers, outs)}

    return run


def keras_activations(model: Any, x: np.ndarray) -> dict[str, np.ndarray]:
    """One-off: every computing layer's output on x."""
    return keras_probe(model)(x)


def _views(t: np.ndarray, like: np.ndarray) -> list[tuple[np.ndarray, str]]:
    """t as `like`'s layout (NHWC): as it is and/or from NCHW. Both when the shape cannot tell
    (the seed's 64x64x64 maps are NHWC and NCHW alike)."""
    out = []
    if t.shape == like.shape:
        out.append((t, "NHWC" if t.ndim == 4 else "-"))
    if t.ndim == 4 and like.ndim == 4 and t.shape == (like.shape[0], like.shape[3], like.shape[1], like.shape[2]):
        out.append((t.transpose(0, 2, 3, 1), "NCHW"))
    if not out and t.size == like.size and t.ndim != 4 and like.ndim != 4:
        out.append((t.reshape(like.shape), "-"))
    return out


def as_layout(t: np.ndarray, like: np.ndarray, layout: str) -> np.ndarray:
    """t brought to NHWC as the map says it is laid out."""
    return t.transpose(0, 2, 3, 1) if layout == "NCHW" else t.reshape(like.shape)


def channel_scale(ref: np.ndarray) -> np.ndarray:
    """Per-channel RMS of a reference activation (channels: the last axis, NHWC), floored so that
    a dead channel does not divide by zero. Dividing by it weights every channel equally: one
    outlier channel a thousand times larger must not hide what happens to the others."""
    axes = tuple(range(ref.ndim - 1))
    if ref.ndim < 2 or ref.size // ref.shape[-1] < MIN_PER_CHANNEL:  # one sample's logits: |value| is no scale
        return np.full(ref.shape[-1:] or (1,), max(float(np.sqrt(np.mean(np.square(ref, dtype=np.float64)))), 1e-30))
    rms = np.sqrt(np.mean(np.square(ref.astype(np.float64)), axis=axes))
    return np.maximum(rms, 1e-3 * max(float(rms.max()), 1e-30))  # near-dead channels: 0.1% of the largest


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a64, b64 = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    d = float(np.linalg.norm(a64) * np.linalg.norm(b64))
    return float(a64 @ b64 / d) if d else (1.0 if not np.any(a64 - b64) else 0.0)


@dataclass
class LayerMap:
    """Every computing layer is in exactly one of: layers (measured: layer -> {"tensor": backend
    name, "layout": "NHWC"|"NCHW"|"-", "score": match score}), folded (fused: layer -> the mapped
    layer that carries it, its nearest mapped descendant in the graph), absent (layer -> why the
    artifact has no tensor for it)."""

    backend: str
    layers: dict[str, dict] = field(default_factory=dict)
    folded: dict[str, str | None] = field(default_factory=dict)
    absent: dict[str, str] = field(default_factory=dict)


EXACT_MAX_REL = 1e-3  # an fp32 tensor within this of a Keras output (relative to its peak) is that output
NEAR_BEST = 2e-3  # int8: of tensors this close to the best match, the last in execution order (as consumed)


class _Want:
    """A Keras output prepared once for scoring against every candidate tensor: per-channel
    scaled (see channel_scale), flattened in float64, its norm and peak."""

    def __init__(self, want: np.ndarray) -> None:
        self.shape, self.size, self.ndim = want.shape, want.size, want.ndim
        self.scale = channel_scale(want)
        self.w = want / self.scale  # float64 (the scale is)
        self.flat = self.w.ravel()
        self.w2 = (self.w / self.scale).ravel()  # (v/s)·(w/s) = v·(w/s²): one dot per candidate
        self.norm = float(np.linalg.norm(self.flat))
        self.peak = max(float(np.abs(self.w).max()), 1.0)


class _Candidate:
    """A backend tensor in a Keras output's layout, prepared once per map: flattened in float64,
    with its per-channel sums of squares (channels: the last axis, as channel_scale's)."""

    def __init__(self, view: np.ndarray) -> None:
        self.view = view
        v = np.ascontiguousarray(view, dtype=np.float64)
        self.flat = v.ravel()
        self.sumsq = np.square(v).reshape(-1, v.shape[-1]).sum(axis=0) if v.ndim else np.square(v).reshape(1)


def _score(cand: _Candidate, want: _Want, exact: bool) -> float | None:
    """Similarity with every channel weighted equally (see channel_scale)."""
    if exact:
        err = float(np.abs(cand.view / want.scale - want.w).max())
        return 1.0 - err if err <= EXACT_MAX_REL * want.peak else None
    d = float(np.sqrt(np.sum(cand.sumsq / np.square(want.scale))) * want.norm)
    if d:
        c = float(cand.flat @ want.w2 / d)
    else:
        c = 1.0 if not np.any(cand.view / want.scale - want.w) else 0.0
    return c if c >= MIN_MATCH_COSINE else None


def _best(
    want_array: np.ndarray, tensors: dict[str, np.ndarray], exact: bool, cache: dict | None = None
) -> tuple[str, str, float] | None:
    """The tensor that is this Keras output; `cache` keeps candidates prepared across layers."""
    cache = {} if cache is None else cache
    want, found = None, []
    for tname, t in tensors.items():
        if t.size != want_array.size:
            continue
        key = (tname, want_array.shape)
        if key not in cache:
            cache[key] = [(_Candidate(view), layout) for view, layout in _views(t, want_array)]
        for cand, layout in cache[key]:
            want = want or _Want(want_array)
            score = _score(cand, want, exact)
            if score is not None:
                found.append((tname, layout, score))
    if not found:
        return None
    top = max(f[2] for f in found)
    return [f for f in found if f[2] >= top - NEAR_BEST][-1]


def base_name(tensor: str) -> str:
    """A probed tensor's name without the '#<position>' our probes add (a '#' in a layer's own name stays)."""
    head, sep, tail = tensor.rpartition("#")
    return head if sep and tail.isdigit() else tensor


def _by_name(want_array: np.ndarray, fp32_tensor: str, tensors: dict[str, np.ndarray]) -> tuple[str, str, float] | None:
    """The int8 tensor named as the fp32 one (ignoring our '#position' suffix), in the layout
    that fits best: found by name, so damage cannot hide it or make another tensor take its place."""
    base = base_name(fp32_tensor)
    same = [t for t in tensors if base_name(t) == base]
    if len(same) != 1:
        return None
    want = _Want(want_array)
    views = [(layout, cosine(view / want.scale, want.w)) for view, layout in _views(tensors[same[0]], want_array)]
    if not views:
        return None
    layout, score = max(views, key=lambda v: v[1])
    return same[0], layout, score


def build(
    backend: str,
    keras_out: dict[str, np.ndarray],
    tensors: dict[str, np.ndarray],
    order: list[str],
    exact: bool = True,
    only: dict[str, str] | None = None,
    graph: dict[str, list[str]] | None = None,
) -> LayerMap:
    """Match Keras outputs to backend tensors by value. exact (fp32 artifacts): within 1e-3 of the
    peak; otherwise the best cosine >= 0.9, among the layers `only` (layer -> tensor of the
    backend's fp32 artifact: fusion decided exactly there, not by similarity). graph: layer ->
    its consumers (`successors`), to give a folded layer to its nearest mapped descendant."""
    lm = LayerMap(backend)
    cache: dict[Any, Any] = {}
    for name in order:
        hit = _best(keras_out[name], tensors, exact, cache) if only is None or name in only else None
        if hit is None and only is not None and name in only:
            lm.absent[name] = "no tensor of the artifact resembles it (cosine < 0.9)"
        elif hit is None:
            lm.folded[name] = None
        else:
            tensor = hit[0] if exact else as_consumed(hit[0], tensors)
            lm.layers[name] = {"tensor": tensor, "layout": hit[1], "score": round(hit[2], 6)}
    _attach_folded(lm, order, graph)
    return lm


def build_int8(
    backend: str,
    keras_out: dict[str, np.ndarray],
    tensors: dict[str, np.ndarray],
    order: list[str],
    fp32_layers: dict[str, str],
    graph: dict[str, list[str]] | None = None,
    twin: dict[str, np.ndarray] | None = None,
) -> LayerMap:
    """The map of a (possibly damaged) int8 artifact, made without trusting its values: a layer
    is found by the name its tensor has in the backend's fp32 artifact (fp32_layers: TFLite and
    ONNX int8 keep those names), or, given `twin` (the int8 artifact's tensors with its activation
    quantizers removed, same names: OpenVINO), by value on the twin, where quantization has not
    damaged anything. A layer whose fp32 tensor has no namesake in int8 was fused there with a
    later op (ONNX's quantizer merges Conv+Relu): it is folded into its nearest mapped descendant."""
    names = fp32_layers
    lm = LayerMap(backend)
    if twin is not None:
        on_twin = build(backend, keras_out, twin, order, exact=False, only=fp32_layers, graph=graph)
        names = {layer: base_name(rec["tensor"]) for layer, rec in on_twin.layers.items()}
        lm.absent.update(
            {k: "nothing in the int8 artifact computes it, even with its quantizers removed" for k in on_twin.absent}
        )
    for name in order:
        if name in lm.absent:
            continue
        hit = _by_name(keras_out[name], names[name], tensors) if name in names else None
        if hit is None:
            lm.folded[name] = None  # fused in the fp32 artifact, or by the int8 one's quantizer
        else:
            lm.layers[name] = {"tensor": as_consumed(hit[0], tensors), "layout": hit[1], "score": round(hit[2], 6)}
    _attach_folded(lm, order, graph)
    return lm


def as_consumed(tname: str, tensors: dict[str, np.ndarray]) -> str:
    """The activation as the next op consumes it: the output of the quantize-dequantize pair
    right after `tname` when the backend has one (ONNX QDQ, OpenVINO FakeQuantize)."""
    base = base_name(tname)
    for cand in (f"{base}_DequantizeLinear_Output", f"{base}/fq_output_0"):
        for t in tensors:
            if t == cand or t.startswith(cand + "#"):
                return t
    return tname


def _attach_folded(lm: LayerMap, order: list[str], graph: dict[str, list[str]] | None = None) -> None:
    """A folded layer is carried by its nearest mapped descendant in the graph (breadth first;
    without a graph, the next mapped layer in order); when two layers map to the same tensor, the
    earlier one is folded into the later (a fused Conv+BN+ReLU)."""
    by_tensor: dict[str, str] = {}
    for name in order:
        rec = lm.layers.get(name)
        if rec is not None:
            prev = by_tensor.get(rec["tensor"])
            if prev is not None:
                lm.folded[prev] = name
                del lm.layers[prev]
            by_tensor[rec["tensor"]] = name
    for name in list(lm.folded):
        if lm.folded[name] is None:
            lm.folded[name] = _carrier(lm, name, order, graph)


def _carrier(lm: LayerMap, name: str, order: list[str], graph: dict[str, list[str]] | None) -> str | None:
    if graph is None:
        later = [n for n in order[order.index(name) + 1 :] if n in lm.layers]
        return later[0] if later else None
    queue, seen = list(graph.get(name, [])), {name}
    while queue:
        nxt = queue.pop(0)
        if nxt in seen:
            continue
        seen.add(nxt)
        if nxt in lm.layers:
            return nxt
        queue.extend(graph.get(nxt, []))
    return None


def open_probe(target: str, model_file: Path) -> Any:
    """A function x -> every intermediate float tensor of the artifact on x (integers dequantized)."""
    from resnet_deploy.backend.target import get_target, targets_with

    found = get_target(target)
    if not found.has("probe"):
        raise InputError(
            f"diagnose does not support target {target!r}; it supports {', '.join(targets_with('probe'))}."
        )
    return found.probe(Path(model_file))


def probe_tensors(target: str, model_file: Path, x: np.ndarray) -> dict[str, np.ndarray]:
    """One-off: every intermediate tensor of the artifact on x."""
    return open_probe(target, model_file)(x)


def for_artifact(
    model: Any, target: str, model_file: Path, x: np.ndarray, exact: bool, keras_out: Any = None
) -> dict | None:
    """The map recorded in an artifact's manifest: every computing Keras layer, mapped to a
    tensor or listed as folded (exact for fp32; by similarity otherwise). None for targets we
    cannot probe (plugins); {"error": ...} if probing failed, so a map is never silently absent.
    keras_out: a function x -> keras_activations(model, x), to share one run between maps."""
    from resnet_deploy.backend.target import get_target

    if not get_target(target).has("probe"):
        return None
    try:
        order = [layer.name for layer in computing_layers(model)]
        acts = keras_out(x) if keras_out is not None else keras_activations(model, x)
        tensors = probe_tensors(target, model_file, x)
        lm = build(target, acts, tensors, order, exact=exact, graph=successors(model))
    except Exception as e:  # noqa: BLE001 - the artifact is fine; say why it has no map
        from resnet_deploy.errors import first_line

        return {"error": f"layer map not made: {first_line(e)}"}
    return {
        "made": "by value" + (" (exact, fp32)" if exact else " (cosine >= 0.9)"),
        "layers": {k: v["tensor"] for k, v in lm.layers.items()},
        "folded": lm.folded,
    }
