"""ParityReport -> Markdown (printed to the terminal) and JSON."""
from __future__ import annotations

import math
from typing import Any

from resnet_deploy.parity import ParityReport


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
    lines = [f"### Parity: {report.model} on {report.samples} samples ({report.data.get('source', {}).get('kind', 'data')})", ""]
    acc = report.results[0].metrics.ref_accuracy if report.results else None
    if acc is not None:
        lines += [f"Keras reference accuracy: {acc * 100:.2f}%", ""]
    lines += ["| backend | precision | ran in | threads | max abs | mean abs | max rel | cosine | SQNR dB | top-1 agr | top-5 ovl | accuracy | Δacc pts | status |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in report.results:
        m = r.metrics
        ran = r.info.get("inference_precision") or r.info.get("precision") or r.info.get("io_dtype") or "-"
        status = "ok" if not r.breaches else "FAIL: " + "; ".join(str(b) for b in r.breaches)
        acc_s = _fmt(m.accuracy * 100, 2) + "%" if m.accuracy is not None else "-"
        lines.append(f"| {r.name} | {r.precision} | {ran} | {r.info.get('threads', '-')} | {_fmt(m.max_abs)} | {_fmt(m.mean_abs)} | "
                     f"{_fmt(m.max_abs_rel)} | {_fmt(m.cosine, 6)} | {_fmt(m.sqnr_db, 1)} | {_fmt(m.top1_agreement)} | "
                     f"{_fmt(m.top5_overlap)} | {acc_s} | {_fmt(m.acc_drop, 2)} | {status} |")
    names = list(report.agreement)
    lines += ["", f"Cross-backend agreement ({report.agreement_metric}):", "",
              "| | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for a in names:
        lines.append(f"| {a} | " + " | ".join(_fmt(report.agreement[a][b]) for b in names) + " |")
    env = report.environment
    if env:
        feats = ", ".join(k for k, v in env.get("cpu", {}).get("features", {}).items() if v) or "none"
        lines += ["", f"CPU: {env.get('cpu', {}).get('model', '?')} ({env.get('cpu', {}).get('arch', '?')}); "
                      f"features: {feats}", "Versions: " + ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items())]
    return "\n".join(lines) + "\n"


def latency_markdown(bench: dict) -> str:
    """The latency table of a bench result."""
    p = bench.get("protocol", {})
    lines = [f"### Latency: {bench['model']}, batch {bench['batch']} (warm-up >= {p.get('warmup_runs')} runs and "
             f"{p.get('warmup_s')} s, then >= {p.get('runs')} runs and {p.get('seconds')} s)", "",
             "| backend | precision | threads (used) | load ms | first ms | p50 ms | p90 ms | p99 ms | mean ms | std ms | "
             "inf/s | peak RSS MB | size MB | speed-up vs Keras |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in bench["rows"]:
        sp = f"{r['speedup_vs_keras']:.2f}x" if r.get("speedup_vs_keras") else "-"
        lines.append(f"| {r['backend']} | {r['precision']} | {r['threads']} ({r['threads_used']}) | {r['load_ms']:.0f} | "
                     f"{r['first_ms']:.2f} | {r['p50']:.2f} | {r['p90']:.2f} | {r['p99']:.2f} | {r['mean']:.2f} | "
                     f"{r['std']:.2f} | {r['throughput']:.1f} | {r['peak_rss_mb']:.0f} | {r['size_mb']:.2f} | {sp} |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# The HTML/Markdown report: parity + latency tables, p50/p90 bars, speed-ups, accuracy-vs-latency.
# --------------------------------------------------------------------------------------------


def _label(backend: str, precision: str, threads: Any = None) -> str:
    return f"{backend} {precision}" + (f" @{threads}t" if threads is not None else "")


def _plots(parity: dict | None, bench: dict | None, dest: Any) -> list[tuple[str, str]]:
    """Write the PNG charts into dest; return [(file name, caption)]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made: list[tuple[str, str]] = []
    if bench and bench.get("rows"):
        rows = bench["rows"]
        labels = [_label(r["backend"], r["precision"], r["threads"]) for r in rows]
        fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(rows)), 4))
        xs = range(len(rows))
        ax.bar([i - 0.2 for i in xs], [r["p50"] for r in rows], width=0.4, label="p50")
        ax.bar([i + 0.2 for i in xs], [r["p90"] for r in rows], width=0.4, label="p90")
        ax.set_xticks(list(xs), labels, rotation=45, ha="right")
        ax.set_ylabel("latency (ms)")
        ax.set_title(f"{bench['model']}: latency per backend and precision (batch {bench['batch']})")
        ax.legend()
        fig.tight_layout()
        fig.savefig(dest / "latency.png", dpi=100)
        plt.close(fig)
        made.append(("latency.png", "p50 and p90 latency per backend, precision and thread count"))

        sp = [r for r in rows if r.get("speedup_vs_keras")]
        if sp:
            fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(sp)), 4))
            ax.bar(range(len(sp)), [r["speedup_vs_keras"] for r in sp], color="tab:green")
            ax.axhline(1.0, color="gray", lw=1)
            ax.set_xticks(range(len(sp)), [_label(r["backend"], r["precision"], r["threads"]) for r in sp], rotation=45, ha="right")
            ax.set_ylabel("speed-up over Keras fp32 (p50)")
            ax.set_title("Speed-up over Keras fp32 at the same thread count")
            fig.tight_layout()
            fig.savefig(dest / "speedup.png", dpi=100)
            plt.close(fig)
            made.append(("speedup.png", "speed-up of each artifact over Keras fp32 (ratio of p50)"))

    if parity and bench:
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
        if points:
            fig, ax = plt.subplots(figsize=(6, 4))
            for lat, q, name in points:
                ax.scatter(lat, q, s=40)
                ax.annotate(name, (lat, q), textcoords="offset points", xytext=(4, 4), fontsize=8)
            ax.set_xlabel("p50 latency (ms, best thread count)")
            metric = "accuracy" if parity["results"] and parity["results"][0]["metrics"]["accuracy"] is not None else "top-1 agreement"
            ax.set_ylabel(f"{metric} (%)")
            ax.set_title("Accuracy vs latency")
            ax.grid(alpha=0.3)
            fig.tight_layout()
            fig.savefig(dest / "accuracy_vs_latency.png", dpi=100)
            plt.close(fig)
            made.append(("accuracy_vs_latency.png", f"{metric} against p50 latency, per backend and precision"))
    return made


def _md_table_to_html(md: str) -> str:
    """Our own Markdown (headings, paragraphs, pipe tables) to HTML; escaped."""
    import html

    out, table = [], []

    def flush() -> None:
        if not table:
            return
        rows = [[html.escape(c.strip()) for c in ln.strip().strip("|").split("|")] for ln in table if not ln.startswith("|---")]
        out.append("<table><thead><tr>" + "".join(f"<th>{c}</th>" for c in rows[0]) + "</tr></thead><tbody>"
                   + "".join("<tr>" + "".join(f"<td class='{'fail' if c.startswith('FAIL') else ''}'>{c}</td>" for c in r)
                             + "</tr>" for r in rows[1:]) + "</tbody></table>")
        table.clear()

    for ln in md.splitlines():
        if ln.startswith("|"):
            table.append(ln)
            continue
        flush()
        if ln.startswith("### "):
            out.append(f"<h2>{html.escape(ln[4:])}</h2>")
        elif ln.strip():
            out.append(f"<p>{html.escape(ln)}</p>")
    flush()
    return "\n".join(out)


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}td.fail{color:#b00;font-weight:bold}
figure{margin:1em 0}img{max-width:100%;border:1px solid #eee}"""


def write_report(parity: dict | None, bench: dict | None, dest: Any) -> dict[str, Any]:
    """Write index.html (self-contained: images inlined as data URIs), report.md and the PNGs."""
    import base64
    import html
    from pathlib import Path

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    sections_md = []
    if parity:
        sections_md.append(parity_markdown(ParityReport.from_dict(parity)))
    if bench:
        sections_md.append(latency_markdown(bench))
    plots = _plots(parity, bench, dest)
    model = (parity or bench or {}).get("model", "model")
    md_all = f"# resnet-deploy report: {model}\n\n" + "\n".join(sections_md) + "\n" + "\n".join(
        f"![{cap}]({name})\n" for name, cap in plots)
    (dest / "report.md").write_text(md_all)
    figs = []
    for name, cap in plots:
        data = base64.b64encode((dest / name).read_bytes()).decode()
        figs.append(f"<figure><img alt='{html.escape(cap)}' src='data:image/png;base64,{data}'>"
                    f"<figcaption>{html.escape(cap)}</figcaption></figure>")
    body = "\n".join(_md_table_to_html(s) for s in sections_md)
    # The tiny script only marks, for tests and people, that every chart decoded.
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>resnet-deploy report: {html.escape(model)}</title>"
            f"<style>{_CSS}</style></head><body><h1>resnet-deploy report: {html.escape(model)}</h1>\n{body}\n"
            + "\n".join(figs) +
            "<script>window.addEventListener('load',()=>{const i=[...document.images];"
            "document.body.dataset.imagesOk=String(i.filter(x=>x.complete&&x.naturalWidth>0).length);"
            "document.body.dataset.imagesTotal=String(i.length);});</script></body></html>\n")
    (dest / "index.html").write_text(page)
    return {"html": str(dest / "index.html"), "markdown": str(dest / "report.md"), "images": [n for n, _ in plots]}
