"""The report's charts (matplotlib, Agg): latency, speed-up, accuracy against latency, throughput
per batch size, time per Keras layer, int8 SQNR per layer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from resnet_deploy.store.fsutil import write_bytes_atomic


def _label(backend: str, precision: str, threads: Any = None) -> str:
    return f"{backend} {precision}" + (f" @{threads}t" if threads is not None else "")


MAX_WIDTH_IN, HEIGHT_IN, MAX_TICKS = 14.0, 4.5, 40  # at 100 dpi: at most 1400 x 450 px, read without zooming


def _width(items: int, per_item: float) -> float:
    return min(MAX_WIDTH_IN, max(6.0, per_item * items))


def _save(fig: Any, path: Path) -> None:
    import io

    import matplotlib.pyplot as plt

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    write_bytes_atomic(path, buf.getvalue())


def _latency_chart(bench: dict, dest: Path) -> tuple[str, str]:
    import matplotlib.pyplot as plt

    rows = bench["rows"]
    fig, ax = plt.subplots(figsize=(_width(len(rows), 0.8), HEIGHT_IN))
    xs = range(len(rows))
    ax.bar([i - 0.2 for i in xs], [r["p50"] for r in rows], width=0.4, label="p50")
    ax.bar([i + 0.2 for i in xs], [r["p90"] for r in rows], width=0.4, label="p90")
    ax.set_xticks(list(xs), [_label(r["backend"], r["precision"], r["threads"]) for r in rows], rotation=45, ha="right")
    ax.set_ylabel("latency (ms)")
    ax.set_title(f"{bench['model']}: latency per backend and precision (batch {bench['batch']})")
    ax.legend()
    _save(fig, dest / "latency.png")
    return "latency.png", "p50 and p90 latency per backend, precision and thread count"


def _speedup_chart(rows: list[dict], dest: Path) -> tuple[str, str]:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(_width(len(rows), 0.8), HEIGHT_IN))
    ax.bar(range(len(rows)), [r["speedup_vs_keras"] for r in rows], color="tab:green")
    ax.axhline(1.0, color="gray", lw=1)
    ax.set_xticks(
        range(len(rows)), [_label(r["backend"], r["precision"], r["threads"]) for r in rows], rotation=45, ha="right"
    )
    ax.set_ylabel("speed-up over Keras fp32 (p50)")
    ax.set_title("Speed-up over Keras fp32 at the same thread count")
    _save(fig, dest / "speedup.png")
    return "speedup.png", "speed-up of each artifact over Keras fp32 (ratio of p50)"


def _quality_points(parity: dict, bench: dict) -> list[tuple[float, float, str]]:
    points = []
    for res in parity["results"]:
        backend, precision = res["name"].split("/")
        m = res["metrics"]
        quality = m["accuracy"] if m["accuracy"] is not None else m["top1_agreement"]
        lat = [r["p50"] for r in bench["rows"] if r["backend"] == backend and r["precision"] == precision]
        if quality is not None and lat:
            points.append((min(lat), quality * 100, res["name"]))
    keras_lat = [r["p50"] for r in bench["rows"] if r["backend"] == "keras"]
    ref_acc = parity["results"][0]["metrics"]["ref_accuracy"] if parity["results"] else None
    if keras_lat and ref_acc is not None:
        points.append((min(keras_lat), ref_acc * 100, "keras/fp32"))
    return points


def _accuracy_chart(parity: dict, points: list, dest: Path) -> tuple[str, str]:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, HEIGHT_IN))
    markers = "osD^vP*X"
    for i, (lat, q, name) in enumerate(points):  # a legend, not labels by the points: they never overlap
        ax.scatter(lat, q, s=60, marker=markers[i % len(markers)], label=name)
    qs = [q for _, q, _ in points]
    mid, half = (max(qs) + min(qs)) / 2, max(5.0, (max(qs) - min(qs)) / 2 + 1)
    ax.set_ylim(max(0.0, mid - half), min(100.5, mid + half))  # at least 10 points tall: drops look their size
    ax.set_xlim(left=0)
    ax.legend(fontsize=8, loc="best")
    ax.set_xlabel("p50 latency (ms, best thread count)")
    metric = "accuracy" if parity["results"][0]["metrics"]["accuracy"] is not None else "top-1 agreement"
    ax.set_ylabel(f"{metric} (%)")
    ax.set_title("Accuracy vs latency")
    ax.grid(alpha=0.3)
    _save(fig, dest / "accuracy_vs_latency.png")
    return "accuracy_vs_latency.png", f"{metric} against p50 latency, per backend and precision"


def _layer_lines(
    order: list[str],
    series: dict[str, dict[str, float]],
    ylabel: str,
    title: str,
    path: Path,
    limit: float | None = None,
) -> None:
    _save(layer_figure(order, series, ylabel, title, limit), path)


def layer_figure(
    order: list[str], series: dict[str, dict[str, float]], ylabel: str, title: str, limit: float | None = None
) -> Any:
    """One line per backend over the Keras layers in graph order (a layer a backend lacks is skipped)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(_width(len(order), 0.35), HEIGHT_IN))
    for name, got in series.items():
        xs = [i for i, n in enumerate(order) if n in got]
        ax.plot(xs, [got[order[i]] for i in xs], marker="o", ms=3, label=name)
    if limit is not None:
        ax.axhline(limit, color="gray", lw=1, ls="--", label="limit")
    step = -(-len(order) // MAX_TICKS)  # every step-th layer named: the names never overlap
    ticks = list(range(0, len(order), step))
    names = [order[i] if len(order[i]) <= 24 else order[i][:23] + "…" for i in ticks]  # the plot keeps its height
    ax.set_xticks(ticks, names, rotation=90, fontsize=7)
    if step > 1:
        ax.set_xlabel(f"Keras layers in graph order (every {step}th named; the tables below list all)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    return fig


def _sqnr_chart(diag: dict, dest: Path) -> tuple[str, str]:
    """SQNR per Keras layer, one line per backend (fused and absent layers have no point)."""
    series = {b: {lay["layer"]: lay["sqnr_db"] for lay in r["layers"]} for b, r in diag["backends"].items()}
    _layer_lines(
        diag["layers"],
        series,
        "int8 vs Keras fp32 SQNR (dB)",
        f"{diag['model']}: int8 SQNR per Keras layer",
        dest / "sqnr_per_layer.png",
        diag["sqnr_limit_db"],
    )
    return "sqnr_per_layer.png", "int8 SQNR per Keras layer and backend (diagnose)"


def plots(results: dict[str, dict | None], dest: Path) -> list[tuple[str, str]]:
    """Write the PNG charts into dest; return [(file name, caption)]."""
    parity, bench, diag = results.get("parity"), results.get("bench"), results.get("diagnose")
    throughput, profile = results.get("throughput"), results.get("profile")
    import matplotlib

    matplotlib.use("Agg")
    made: list[tuple[str, str]] = []
    if diag and diag.get("backends"):
        made.append(_sqnr_chart(diag, dest))
    if bench and bench.get("rows"):
        made.append(_latency_chart(bench, dest))
        sp = [r for r in bench["rows"] if r.get("speedup_vs_keras")]
        if sp:
            made.append(_speedup_chart(sp, dest))
    if parity and bench and parity["results"] and parity.get("reference", {}).get("trained") is not False:
        points = _quality_points(parity, bench)
        if points:
            made.append(_accuracy_chart(parity, points, dest))
    if throughput and throughput.get("rows"):
        made.append(_throughput_chart(throughput, dest))
    if profile and profile.get("backends"):
        made.append(_profile_chart(profile, dest))
    return made


def _throughput_chart(result: dict, dest: Path) -> tuple[str, str]:
    """Inferences per second per backend/precision, one bar group per batch size."""
    import matplotlib.pyplot as plt

    rows = result["rows"]
    names = list(dict.fromkeys(_label(r["backend"], r["precision"], r["threads"]) for r in rows))
    batches = sorted({r["batch"] for r in rows})
    width = 0.8 / len(batches)
    fig, ax = plt.subplots(figsize=(_width(len(names), 0.9), HEIGHT_IN))
    for j, b in enumerate(batches):
        got = {_label(r["backend"], r["precision"], r["threads"]): r["throughput"] for r in rows if r["batch"] == b}
        ax.bar(
            [i + (j - (len(batches) - 1) / 2) * width for i in range(len(names))],
            [got.get(n, 0.0) for n in names],
            width=width,
            label=f"batch {b}",
        )
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_ylabel("inferences / s")
    ax.set_title(f"{result['model']}: throughput with requests in flight on every stream")
    ax.legend()
    _save(fig, dest / "throughput.png")
    return "throughput.png", "throughput (inferences per second) per backend, precision and batch size"


def _profile_chart(profile: dict, dest: Path) -> tuple[str, str]:
    """Share of the time per Keras layer, one line per backend."""
    series = {
        k: {r["layer"]: r["pct"] for r in b["layers"]} for k, b in profile["backends"].items() if b.get("supported")
    }
    order = list(dict.fromkeys(layer for got in series.values() for layer in got))
    _layer_lines(
        order, series, "share of the time (%)", f"{profile['model']}: time per Keras layer", dest / "time_per_layer.png"
    )
    return "time_per_layer.png", "share of the inference time per Keras layer and backend (bench --profile)"
