"""`diagnose`: where int8 loses accuracy, per Keras layer, on every backend, with the same names.

For each backend, the int8 artifact runs with every intermediate tensor exposed (its target's probe),
each Keras layer is given its tensor (layermap: by value, fusion decided exactly on the
backend's fp32 artifact, by the layer map its manifest recorded), and over N inputs the int8 activation is compared with Keras' fp32
activation of that layer: SQNR, cosine, max error relative to the peak, and the error the layer
adds on its own (its SQNR drop below the worst of the layers that feed it). Statistics are
streamed sample by sample: one sample's intermediates are held at a time.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from resnet_deploy.exporting import layermap
from resnet_deploy.progress import Progress

DEFAULT_SQNR_LIMIT = 20.0  # dB: below this an int8 activation has lost ~10% of its signal's precision


class _Stats:
    """Running sums for one layer."""

    def __init__(self) -> None:
        self.signal = self.noise = self.dot = self.nr = self.no = 0.0
        self.max_err = self.peak = 0.0

    def add(self, ref: np.ndarray, out: np.ndarray) -> None:
        r, o = ref.astype(np.float64).ravel(), out.astype(np.float64).ravel()
        d = o - r
        self.signal += float(r @ r)
        self.noise += float(d @ d)
        self.dot += float(r @ o)
        self.nr += float(r @ r)
        self.no += float(o @ o)
        self.max_err = max(self.max_err, float(np.abs(d).max()))
        self.peak = max(self.peak, float(np.abs(r).max()))

    def result(self) -> dict:
        sqnr = math.inf if self.noise == 0 else 10 * math.log10(self.signal / self.noise) if self.signal else -math.inf
        den = math.sqrt(self.nr * self.no)
        return {"sqnr_db": sqnr, "cosine": self.dot / den if den else 1.0, "max_rel": self.max_err / (self.peak or 1.0)}


def _nsr(sqnr_db: float) -> float:
    """Noise-to-signal power ratio from SQNR dB."""
    return 0.0 if math.isinf(sqnr_db) and sqnr_db > 0 else 10 ** (-sqnr_db / 10)


def _feed_nsr(name: str, stats: dict[str, dict], model: Any, seen: set[str]) -> float:
    """The worst noise-to-signal ratio among what feeds `name`: its mapped predecessors, looking
    through folded ones; the model input counts as exact (0)."""
    worst = 0.0
    for p in layermap.predecessors(model.get_layer(name)):
        if p in stats:
            worst = max(worst, _nsr(stats[p]["sqnr_db"]))
        elif p not in seen and type(model.get_layer(p)).__name__ != "InputLayer":
            seen.add(p)
            worst = max(worst, _feed_nsr(p, stats, model, seen))
    return worst


def _fp32_layers(target: str, fp32: Any, first: dict, x: np.ndarray, order: list[str]) -> dict[str, str]:
    """layer -> tensor of the backend's fp32 artifact: from its manifest's exact layer map
    (recorded at export), else by probing it now."""
    recorded = fp32.manifest.get("layer_map") or {}
    if isinstance(recorded.get("layers"), dict):
        return {str(k): str(v) for k, v in recorded["layers"].items()}
    lm = layermap.build(target, first, layermap.probe_tensors(target, fp32.model_file, x[:1]), order)
    return {k: v["tensor"] for k, v in lm.layers.items()}


def _int8_map(model: Any, target: str, int8_file: Any, first: dict, got: dict, fp32_layers: dict, x: Any) -> Any:
    """Keras layers -> the int8 artifact's tensors, found without trusting int8's values: by the
    fp32 artifact's tensor names, or by value on the int8 artifact with its quantizers removed;
    by value on int8 itself only for a target that offers neither (a plugin)."""
    from resnet_deploy.backend.target import get_target

    found, graph = get_target(target), layermap.successors(model)
    order = [layer.name for layer in layermap.computing_layers(model)]
    label = f"{target}/int8"
    if found.int8_keeps_fp32_names:
        return layermap.build_int8(label, first, got, order, fp32_layers, graph)
    twin = found.float_twin(int8_file) if found.has("float_twin") else None
    if twin is not None:
        return layermap.build_int8(label, first, got, order, fp32_layers, graph, twin=twin(x[:1]))
    return layermap.build(label, first, got, order, exact=False, only=fp32_layers, graph=graph)


def diagnose_backend(
    model: Any,
    target: str,
    fp32: Any,
    int8_file: Any,
    x: np.ndarray,
    sqnr_limit: float,
    progress: Progress | None = None,
) -> dict:
    """Per-layer errors of one backend's int8 artifact against Keras on the inputs x (every layer
    of every sample: progress counts the samples)."""
    order = [layer.name for layer in layermap.computing_layers(model)]
    keras_run, probe = layermap.keras_probe(model), layermap.open_probe(target, int8_file)
    first, first_got = keras_run(x[:1]), probe(x[:1])
    lm = _int8_map(model, target, int8_file, first, first_got, _fp32_layers(target, fp32, first, x, order), x)
    stats = {name: _Stats() for name in lm.layers}
    scales = {name: layermap.channel_scale(first[name]) for name in lm.layers}  # every channel counts alike
    label = f"diagnosing {target}/int8, {len(lm.layers)} layers"
    for i in (progress or Progress()).track(range(len(x)), len(x), label):  # one sample's intermediates at a time
        ref, got = (first, first_got) if i == 0 else (keras_run(x[i : i + 1]), probe(x[i : i + 1]))
        for name, rec in lm.layers.items():
            view = layermap.as_layout(got[rec["tensor"]], ref[name], rec["layout"])
            stats[name].add(ref[name] / scales[name], view / scales[name])
    return _summarise(model, lm, {n: s.result() for n, s in stats.items()}, sqnr_limit)


def _summarise(model: Any, lm: Any, results: dict[str, dict], sqnr_limit: float) -> dict:
    layers = []
    for name, rec in lm.layers.items():
        r = results[name]
        added = max(0.0, _nsr(r["sqnr_db"]) - _feed_nsr(name, results, model, set()))
        layers.append(
            {
                "layer": name,
                "class": type(model.get_layer(name)).__name__,
                "tensor": rec["tensor"],
                "sqnr_db": round(r["sqnr_db"], 3),
                "cosine": round(r["cosine"], 6),
                "max_rel": round(r["max_rel"], 6),
                "added_noise_pct": round(100 * added, 4),
            }
        )
    bad = [lay["layer"] for lay in layers if lay["sqnr_db"] < sqnr_limit]
    first = min(bad, key=lambda n: [layer.name for layer in model.layers].index(n)) if bad else None
    ranked = [lay["layer"] for lay in sorted(layers, key=lambda lay: -lay["added_noise_pct"])]
    return {"first_divergent": first, "ranked": ranked, "layers": layers, "folded": lm.folded, "absent": lm.absent}
