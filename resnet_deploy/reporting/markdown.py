"""Markdown tables of a parity report and a bench result (printed by the CLI, and the body of
the HTML report in html.py)."""

from __future__ import annotations

import math
from typing import Any

from resnet_deploy.evaluate.parity import ParityReport


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if math.isinf(v):
            return "inf"
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
            return f"{v:.2e}"
        return f"{v:.{digits}f}"
    return str(v)


def parity_markdown(report: ParityReport) -> str:
    """The parity table, the agreement matrix and the environment, as Markdown."""
    lines = [
        f"### Parity: {report.model} on {report.samples} samples ({report.data.get('source', {}).get('kind', 'data')})",
        "",
    ]
    acc = report.results[0].metrics.ref_accuracy if report.results else None
    if acc is not None:
        lines += [f"Keras reference accuracy: {acc * 100:.2f}%", ""]
    lines += _reference_notes(report.reference)
    lines += [
        "| backend | precision | ran in | threads | max abs | mean abs | max rel | cosine | SQNR dB | top-1 agr | top-5 ovl | accuracy | Δacc pts | status |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report.results:
        m = r.metrics
        ran = r.info.get("inference_precision") or r.info.get("precision") or r.info.get("io_dtype") or "-"
        status = "ok" if not r.breaches else "FAIL: " + "; ".join(str(b) for b in r.breaches)
        acc_s = _fmt(m.accuracy * 100, 2) + "%" if m.accuracy is not None else "-"
        lines.append(
            f"| {r.name} | {r.precision} | {ran} | {r.info.get('threads', '-')} | {_fmt(m.max_abs)} | {_fmt(m.mean_abs)} | "
            f"{_fmt(m.max_abs_rel)} | {_fmt(m.cosine, 6)} | {_fmt(m.sqnr_db, 1)} | {_fmt(m.top1_agreement)} | "
            f"{_fmt(m.top5_overlap)} | {acc_s} | {_fmt(m.acc_drop, 2)} | {status} |"
        )
    names = list(report.agreement)
    lines += [
        "",
        f"Cross-backend agreement ({report.agreement_metric}):",
        "",
        "| | " + " | ".join(names) + " |",
        "|---" * (len(names) + 1) + "|",
    ]
    for a in names:
        lines.append(f"| {a} | " + " | ".join(_fmt(report.agreement[a][b]) for b in names) + " |")
    env = report.environment
    if env:
        feats = ", ".join(k for k, v in env.get("cpu", {}).get("features", {}).items() if v) or "none"
        lines += [
            "",
            f"CPU: {env.get('cpu', {}).get('model', '?')} ({env.get('cpu', {}).get('arch', '?')}); features: {feats}",
            "Versions: " + ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items()),
        ]
    return "\n".join(lines) + "\n"


def _reference_notes(ref: dict) -> list[str]:
    """Preprocessing, untrained models and (without labels) how spread Keras' predictions are."""
    out = []
    pp = ref.get("preprocessing")
    if pp:
        out.append(
            f"Preprocessing: {pp.get('preset') or 'custom'} (scale {pp['scale']:.6g}, mean {pp['mean']}, "
            f"std {pp['std']}, {pp['channels']}, {pp['resize']}): {pp.get('why', '')}"
        )
    if ref.get("trained") is False:
        out.append("UNTRAINED model (random weights): these numbers are for speed only, not accuracy.")
    pred = ref.get("predictions")
    if pred:
        out.append(
            f"Keras predictions (no labels): {pred['distinct_top1']} of {pred['classes']} classes predicted, "
            f"mean entropy {pred['mean_entropy_bits']} of {pred['max_entropy_bits']} bits, "
            f"top classes {pred['top_classes']}"
        )
    return [*[ln + "\n" for ln in out[:-1]], *out[-1:], ""] if out else []


def _ops(ops: dict | None) -> str:
    """'54/3/12 (float: Softmax x2, Add)': what the runtime executes in int8, float, conversions."""
    if not ops:
        return "-"
    floats = ", ".join(f"{t} x{n}" if n > 1 else t for t, n in sorted((ops.get("float_types") or {}).items()))
    return f"{ops['int8']}/{ops['float']}/{ops['convert']}" + (f" (float: {floats})" if floats else "")


def _untrained(lines: list[str], result: dict) -> None:
    if result.get("trained") is False:
        lines[1:1] = ["UNTRAINED model (random weights): speed only.", ""]


def _speedup(row: dict) -> str:
    return f"{row['speedup_vs_keras']:.2f}x" if row.get("speedup_vs_keras") else "-"


def latency_markdown(bench: dict) -> str:
    """The latency table of a bench result."""
    p = bench.get("protocol", {})
    lines = [
        f"### Latency: {bench['model']}, batch {bench['batch']} (warm-up >= {p.get('warmup_runs')} runs and "
        f"{p.get('warmup_s')} s, then >= {p.get('runs')} runs and {p.get('seconds')} s)",
        "",
        "| backend | precision | threads (used) | load ms | first ms | p50 ms | p90 ms | p99 ms | mean ms | std ms | "
        "inf/s | peak RSS MB | size MB | speed-up vs Keras | ops int8/float/convert |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    _untrained(lines, bench)
    for r in bench["rows"]:
        sp = _speedup(r)
        lines.append(
            f"| {r['backend']} | {r['precision']} | {r['threads']} ({r['threads_used']}) | {r['load_ms']:.0f} | "
            f"{r['first_ms']:.2f} | {r['p50']:.2f} | {r['p90']:.2f} | {r['p99']:.2f} | {r['mean']:.2f} | "
            f"{r['std']:.2f} | {r['throughput']:.1f} | {r['peak_rss_mb']:.0f} | {r['size_mb']:.2f} | {sp} | "
            f"{_ops(r.get('ops'))} |"
        )
    for r in bench["rows"]:
        if r.get("float_fallback"):
            f, lat = r["float_fallback"], r["float_fallback"].get("latency") or {}
            lines.append(
                f"\n{r['backend']}/{r['precision']} keeps {len(f['float_layers'])} layers in float for its "
                f"accuracy budget ({', '.join(f['float_layers'])}): p50 x{lat.get('ratio')} of plain int8 "
                f"({lat.get('p50_ms', {}).get('plain_int8')} -> {lat.get('p50_ms', {}).get('with_fallback')} ms, "
                f"{lat.get('measured')}, {lat.get('cpu')})."
            )
    return "\n".join(lines) + "\n"


def throughput_markdown(result: dict) -> str:
    """The throughput table of a `bench --mode throughput` result, with the settings each runtime used."""
    p = result.get("protocol", {})
    lines = [
        f"### Throughput: {result['model']}, batch {','.join(map(str, result['batches']))} (requests in flight "
        f"on every stream; warm-up {p.get('warmup_s')} s, then >= {p.get('seconds')} s)",
        "",
        "| backend | precision | batch | threads | streams | inf/s | latency p50 ms | p90 ms | p99 ms | requests | "
        "x Keras | how |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    _untrained(lines, result)
    for r in result["rows"]:
        sp = _speedup(r)
        lines.append(
            f"| {r['backend']} | {r['precision']} | {r['batch']} | {r['threads']} | {r['streams']} | "
            f"{r['throughput']:.1f} | {r['p50']:.2f} | {r['p90']:.2f} | {r['p99']:.2f} | {r['requests']} | {sp} | "
            f"{r['settings'].get('how', '')} |"
        )
    return "\n".join(lines) + "\n"


def profile_markdown(result: dict, top: bool = False) -> str:
    """Time per Keras layer on every backend (one table), or with top=True the few most expensive
    layers per backend (the terminal's view)."""
    from resnet_deploy.measure.profiling import top_layers

    head = (
        f"### Where the time goes: {result['model']}, per Keras layer (a layer with the batch norm and ReLU after it is one row; {result['threads']} threads, batch "
        f"{result['batch']}, mean of {result['runs']} runs)"
    )
    if top:
        return "\n".join(["", head, ""] + [f"- {line}" for line in top_layers(result)]) + "\n"
    backends = {k: b for k, b in result["backends"].items() if b.get("supported")}
    lines = [head, ""] + [
        f"- {k}: no per-op profile ({b.get('why')})" for k, b in result["backends"].items() if not b.get("supported")
    ]
    lines += [
        "",
        "| layer | " + " | ".join(f"{k} ms | {k} % | {k} int8/float ops" for k in backends) + " |",
        "|---|" + "---|---|---|" * len(backends),
    ]
    rows: dict[str, dict] = {}
    for k, b in backends.items():
        for r in b["layers"]:
            rows.setdefault(r["layer"], {})[k] = r
    for layer, per in rows.items():
        cells = [
            f"{per[k]['ms']:.3f} | {per[k]['pct']:.1f} | {per[k]['int8']}/{per[k]['float']}"
            if k in per
            else "- | - | -"
            for k in backends
        ]
        folded: list[str] = next((r.get("folded_in") for r in per.values() if r.get("folded_in")), [])
        lines.append(f"| {layer}{' (+ ' + ', '.join(folded) + ')' if folded else ''} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def diagnose_markdown(result: dict) -> str:
    """Per Keras layer, in graph order: each backend's int8 SQNR and the dB it adds on its own."""
    backends = list(result["backends"])
    lines = [
        f"### Diagnose: {result['model']} int8 vs Keras fp32, per layer, on {result['samples']} samples "
        f"(limit {result['sqnr_limit_db']:g} dB)",
        "",
    ]
    for b in backends:
        r = result["backends"][b]
        lost = f"; LOST (int8 no longer resembles Keras): {', '.join(r['lost'])}" if r.get("lost") else ""
        lines.append(
            f"- {b}: first below the limit: {r['first_divergent'] or 'none'}{lost}; adds the most: "
            f"{', '.join(r['ranked'][:3])}; folded: " + ", ".join(f"{k}->{v}" for k, v in r["folded"].items())
        )
    lines += [
        "",
        "| layer | class | " + " | ".join(f"{b} SQNR dB | {b} added noise %" for b in backends) + " |",
        "|---|---|" + "---|---|" * len(backends),
    ]
    rows: dict[str, dict] = {name: {} for name in result["layers"]}
    for b in backends:
        for lay in result["backends"][b]["layers"]:
            rows[lay["layer"]].update({"class": lay["class"], b: lay})
    for name, row in rows.items():
        if not row and not any(name in result["backends"][b].get("lost", []) for b in backends):
            continue
        cells = [
            f"{_fmt(row[b]['sqnr_db'], 1)} | {_fmt(row[b]['added_noise_pct'], 3)}"
            if b in row
            else "LOST | -"
            if name in result["backends"][b].get("lost", [])
            else "folded | -"
            for b in backends
        ]
        lines.append(f"| {name} | {row.get('class', '-')} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
