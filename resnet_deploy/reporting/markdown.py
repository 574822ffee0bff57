"""The sections of a parity report, bench, throughput, profile and diagnose result (doc.py):
printed as Markdown by the CLI and in report.md, rendered as HTML by html.py."""

from __future__ import annotations

import math
from typing import Any

from resnet_deploy.evaluate.tolerances import UNTRAINED_NOTE
from resnet_deploy.evaluate.parity import ParityReport
from resnet_deploy.reporting.doc import Section, Table


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
    return parity_section(report).markdown()


def parity_section(report: ParityReport) -> Section:
    """The parity table, the agreement matrix and the environment."""
    lines: list = []
    acc = report.results[0].metrics.ref_accuracy if report.results else None
    if acc is not None:
        lines += [f"Keras reference accuracy: {acc * 100:.2f}%", ""]
    lines += _reference_notes(report.reference)
    table = Table(
        "backend,precision,ran in,threads,max abs,mean abs,max rel,cosine,SQNR dB,top-1 agr,top-5 ovl,accuracy,"
        "Δacc pts,status".split(",")
    )
    for r in report.results:
        m = r.metrics
        ran = r.info.get("inference_precision") or r.info.get("precision") or r.info.get("io_dtype") or "-"
        status = "ok" if not r.breaches else "FAIL: " + "; ".join(str(b) for b in r.breaches)
        acc_s = _fmt(m.accuracy * 100, 2) + "%" if m.accuracy is not None else "-"
        table.rows.append(
            [r.name, str(r.precision), str(ran), str(r.info.get("threads", "-")), _fmt(m.max_abs), _fmt(m.mean_abs)]
            + [_fmt(m.max_abs_rel), _fmt(m.cosine, 6), _fmt(m.sqnr_db, 1), _fmt(m.top1_agreement)]
            + [_fmt(m.top5_overlap), acc_s, _fmt(m.acc_drop, 2), status]
        )
    names = list(report.agreement)
    agreement = Table(["", *names], [[a, *(_fmt(report.agreement[a][b]) for b in names)] for a in names])
    lines += [table, "", f"Cross-backend agreement ({report.agreement_metric}):", "", agreement]
    env = report.environment
    if env:
        feats = ", ".join(k for k, v in env.get("cpu", {}).get("features", {}).items() if v) or "none"
        lines += [
            "",
            f"CPU: {env.get('cpu', {}).get('model', '?')} ({env.get('cpu', {}).get('arch', '?')}); features: {feats}",
            "Versions: " + ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items()),
        ]
    kind = report.data.get("source", {}).get("kind", "data")
    return Section(f"Parity: {report.model} on {report.samples} samples ({kind})", lines)


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
        out.append(
            f"UNTRAINED model (random weights): these numbers are for speed only, not accuracy; {UNTRAINED_NOTE}."
        )
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


def _untrained(result: dict) -> list:
    return ["UNTRAINED model (random weights): speed only.", ""] if result.get("trained") is False else []


def _speedup(row: dict) -> str:
    return f"{row['speedup_vs_keras']:.2f}x" if row.get("speedup_vs_keras") else "-"


def latency_markdown(bench: dict) -> str:
    return latency_section(bench).markdown()


def latency_section(bench: dict) -> Section:
    """The latency table of a bench result."""
    p = bench.get("protocol", {})
    table = Table(
        "backend,precision,threads (used),load ms,first ms,p50 ms,p90 ms,p99 ms,mean ms,std ms,inf/s,peak RSS MB,"
        "size MB,speed-up vs Keras,ops int8/float/convert".split(",")
    )
    for r in bench["rows"]:
        table.rows.append(
            [r["backend"], r["precision"], f"{r['threads']} ({r['threads_used']})", f"{r['load_ms']:.0f}"]
            + [f"{r[k]:.2f}" for k in ("first_ms", "p50", "p90", "p99", "mean", "std")]
            + [f"{r['throughput']:.1f}", f"{r['peak_rss_mb']:.0f}", f"{r['size_mb']:.2f}", _speedup(r)]
            + [_ops(r.get("ops"))]
        )
    lines: list = [*_untrained(bench), table]
    for r in bench["rows"]:
        if r.get("float_fallback"):
            f, lat = r["float_fallback"], r["float_fallback"].get("latency") or {}
            what = [f"is repaired with {', '.join(f['repairs'])}"] if f.get("repairs") else []
            what += [f"keeps {len(f['float_layers'])} layers in float ({', '.join(f['float_layers'])})"] * bool(
                f["float_layers"]
            )
            lines.append(
                f"\n{r['backend']}/{r['precision']} {' and '.join(what)} for its "
                f"accuracy budget: p50 x{lat.get('ratio')} of plain int8 "
                f"({lat.get('p50_ms', {}).get('plain_int8')} -> {lat.get('p50_ms', {}).get('budgeted')} ms, "
                f"{lat.get('measured')}, {lat.get('cpu')})."
            )
    title = (
        f"Latency: {bench['model']}, batch {bench['batch']} (warm-up >= {p.get('warmup_runs')} runs and "
        f"{p.get('warmup_s')} s, then >= {p.get('runs')} runs and {p.get('seconds')} s)"
    )
    return Section(title, lines)


def throughput_markdown(result: dict) -> str:
    return throughput_section(result).markdown()


def throughput_section(result: dict) -> Section:
    """The throughput table of a `bench --mode throughput` result, with the settings each runtime used."""
    p = result.get("protocol", {})
    table = Table(
        "backend,precision,batch,threads,streams,inf/s,latency p50 ms,p90 ms,p99 ms,requests,x Keras,warm-up,how".split(
            ","
        )
    )
    for r in result["rows"]:
        table.rows.append(
            [r["backend"], r["precision"], str(r["batch"]), str(r["threads"]), str(r["streams"])]
            + [f"{r['throughput']:.1f}", f"{r['p50']:.2f}", f"{r['p90']:.2f}", f"{r['p99']:.2f}"]
            + [str(r["requests"]), _speedup(r), _warmup(r), r["settings"].get("how", "")]
        )
    title = (
        f"Throughput: {result['model']}, batch {','.join(map(str, result['batches']))} (requests in flight "
        f"on every stream; warm-up >= {p.get('warmup_s')} s and until calls are steady, then >= {p.get('seconds')} s)"
    )
    return Section(title, [*_untrained(result), table])


def _warmup(r: dict) -> str:
    """'1.2 s, 14 calls' or, when calls never settled, that too (the numbers are then less sure)."""
    if r.get("warmup_s") is None:
        return "-"
    return f"{r['warmup_s']:.1f} s, {r['warmup_calls']} calls" + ("" if r.get("steady") else " (never steady)")


def profile_markdown(result: dict, top: bool = False) -> str:
    """Time per Keras layer on every backend (one table), or with top=True the few most expensive
    layers per backend (the terminal's view)."""
    from resnet_deploy.measure.profiling import top_layers

    section = profile_section(result)
    if top:
        return "\n".join(["", "### " + section.title, ""] + [f"- {line}" for line in top_layers(result)]) + "\n"
    return section.markdown()


def profile_section(result: dict) -> Section:
    backends = {k: b for k, b in result["backends"].items() if b.get("supported")}
    lines: list = [
        f"- {k}: no per-op profile ({b.get('why')})" for k, b in result["backends"].items() if not b.get("supported")
    ]
    table = Table(["layer", *(f"{k} {c}" for k in backends for c in ("ms", "%", "int8/float ops"))])
    rows: dict[str, dict] = {}
    for k, b in backends.items():
        for r in b["layers"]:
            rows.setdefault(r["layer"], {})[k] = r
    for layer, per in rows.items():
        cells = [
            c
            for k in backends
            for c in (
                [f"{per[k]['ms']:.3f}", f"{per[k]['pct']:.1f}", f"{per[k]['int8']}/{per[k]['float']}"]
                if k in per
                else ["-", "-", "-"]
            )
        ]
        folded: list[str] = next((r.get("folded_in") for r in per.values() if r.get("folded_in")), [])
        table.rows.append([f"{layer}{' (+ ' + ', '.join(folded) + ')' if folded else ''}", *cells])
    title = (
        f"Where the time goes: {result['model']}, per Keras layer (a layer with the batch norm and ReLU after it "
        f"is one row; {result['threads']} threads, batch {result['batch']}, mean of {result['runs']} runs)"
    )
    return Section(title, [*lines, "", table])


def diagnose_markdown(result: dict) -> str:
    return diagnose_section(result).markdown()


TERMINAL_TOP = 5  # layers per backend the terminal shows; the full table is in --json and the report


def diagnose_terminal(result: dict) -> str:
    """The terminal's view: per backend the verdict and the layers that add the most noise."""
    lines = [
        f"Diagnose: {result['model']} int8 vs Keras fp32 on {result['samples']} samples "
        f"(limit {result['sqnr_limit_db']:g} dB)",
        "",
    ]
    for b, r in result["backends"].items():
        by_name = {lay["layer"]: lay for lay in r["layers"]}
        worst = r["ranked"][:TERMINAL_TOP]
        verdict = (
            f"first below the limit: {r['first_divergent']}" if r["first_divergent"] else "no layer below the limit"
        )
        lines.append(f"- {b}: {verdict}{_absent(r)}; {len(r['folded'])} layers fused into others")
        for name in worst:
            lay = by_name.get(name, {})
            lines.append(
                f"    {name}: SQNR {_fmt(lay.get('sqnr_db'), 1)} dB, adds {_fmt(lay.get('added_noise_pct'), 3)}% noise"
            )
    rows = result.get("root_cause") or {}
    causes = root_cause_table(dict(list(rows.items())[:TERMINAL_TOP]))
    if causes is not None:
        more = f" ({len(rows) - TERMINAL_TOP} more in --json and the report)" if len(rows) > TERMINAL_TOP else ""
        lines += ["", f"Why (Keras, int8 weights and activations each alone){more}:", *causes.markdown()]
    lines += ["", "Every layer: --json, or `report` (the per-layer table and chart)."]
    return "\n".join(lines) + "\n"


def root_cause_table(rows: dict[str, dict]) -> Table | None:
    """Per damaged layer: weights-only and activations-only SQNR, what shapes its range, the fix."""
    if not rows:
        return None
    table = Table(
        ["layer", "weights dB", "activations dB", "channel spread", "max/p99.99", "low bins %", "clipped %", "fix"]
    )
    for name, r in rows.items():
        table.rows.append(
            [
                name,
                _fmt(r.get("weights_sqnr_db"), 1),
                _fmt(r.get("activations_sqnr_db"), 1),
                _fmt(r.get("channel_spread"), 1),
                _fmt(r.get("max_over_p99_99"), 1),
                _fmt(r.get("low_bins_pct"), 1),
                _fmt(r.get("clipped_pct"), 2),
                r["fix"],
            ]
        )
    return table


def _absent(r: dict) -> str:
    """Layers the artifact has no tensor for, and why (diagnose's record)."""
    absent = r.get("absent") or {}
    return "".join(f"; {k} absent ({why})" for k, why in absent.items())


def diagnose_section(result: dict) -> Section:
    """Per Keras layer, in graph order: each backend's int8 SQNR and the dB it adds on its own."""
    backends = list(result["backends"])
    lines: list = []
    for b in backends:
        r = result["backends"][b]
        lines.append(
            f"- {b}: first below the limit: {r['first_divergent'] or 'none'}{_absent(r)}; adds the most: "
            f"{', '.join(r['ranked'][:3])}; folded: " + ", ".join(f"{k}->{v}" for k, v in r["folded"].items())
        )
    table = Table(["layer", "class", *(f"{b} {c}" for b in backends for c in ("SQNR dB", "added noise %"))])
    rows: dict[str, dict] = {name: {} for name in result["layers"]}
    for b in backends:
        for lay in result["backends"][b]["layers"]:
            rows[lay["layer"]].update({"class": lay["class"], b: lay})
    for name, row in rows.items():
        absent_in = [b for b in backends if name in (result["backends"][b].get("absent") or {})]
        if not row and not absent_in:
            continue
        cells = [
            c
            for b in backends
            for c in (
                [_fmt(row[b]["sqnr_db"], 1), _fmt(row[b]["added_noise_pct"], 3)]
                if b in row
                else ["absent" if b in absent_in else "folded", "-"]
            )
        ]
        table.rows.append([name, row.get("class", "-"), *cells])
    title = (
        f"Diagnose: {result['model']} int8 vs Keras fp32, per layer, on {result['samples']} samples "
        f"(limit {result['sqnr_limit_db']:g} dB)"
    )
    causes = root_cause_table(result.get("root_cause") or {})
    why: list[str | Table] = []
    if causes is not None:
        why = ["", "Why each damaged layer is damaged (Keras, int8 weights and activations each alone):", causes]
    return Section(title, [*lines, "", table, *why])
