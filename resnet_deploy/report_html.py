"""The `report` command: an offline HTML page (charts inlined) and report.md from the last
parity and bench runs, found through the workspace: parity + latency tables, p50/p90 bars,
speed-up over Keras, accuracy against latency."""
from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from resnet_deploy.errors import InputError
from resnet_deploy.fsutil import publish_dir, staging_dir, write_bytes_atomic, write_text_atomic
from resnet_deploy.models import ModelRef
from resnet_deploy.parity import ParityReport
from resnet_deploy.report import diagnose_markdown, latency_markdown, parity_markdown
from resnet_deploy.requests import ReportRequest
from resnet_deploy.workspace import Workspace


def _label(backend: str, precision: str, threads: Any = None) -> str:
    return f"{backend} {precision}" + (f" @{threads}t" if threads is not None else "")


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
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(rows)), 4))
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

    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(rows)), 4))
    ax.bar(range(len(rows)), [r["speedup_vs_keras"] for r in rows], color="tab:green")
    ax.axhline(1.0, color="gray", lw=1)
    ax.set_xticks(range(len(rows)), [_label(r["backend"], r["precision"], r["threads"]) for r in rows],
                  rotation=45, ha="right")
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

    fig, ax = plt.subplots(figsize=(6, 4))
    for lat, q, name in points:
        ax.scatter(lat, q, s=40)
        ax.annotate(name, (lat, q), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel("p50 latency (ms, best thread count)")
    metric = "accuracy" if parity["results"][0]["metrics"]["accuracy"] is not None else "top-1 agreement"
    ax.set_ylabel(f"{metric} (%)")
    ax.set_title("Accuracy vs latency")
    ax.grid(alpha=0.3)
    _save(fig, dest / "accuracy_vs_latency.png")
    return "accuracy_vs_latency.png", f"{metric} against p50 latency, per backend and precision"


def _sqnr_chart(diag: dict, dest: Path) -> tuple[str, str]:
    """SQNR per Keras layer, one line per backend (lost layers drawn at 0 dB)."""
    import matplotlib.pyplot as plt

    order = diag["layers"]
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(order)), 4))
    for b, r in diag["backends"].items():
        got = {lay["layer"]: lay["sqnr_db"] for lay in r["layers"]}
        got.update({name: 0.0 for name in r.get("lost", [])})
        xs = [i for i, n in enumerate(order) if n in got]
        ax.plot(xs, [got[order[i]] for i in xs], marker="o", label=b)
    ax.axhline(diag["sqnr_limit_db"], color="gray", lw=1, ls="--", label="limit")
    ax.set_xticks(range(len(order)), order, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("int8 vs Keras fp32 SQNR (dB)")
    ax.set_title(f"{diag['model']}: int8 SQNR per Keras layer")
    ax.legend()
    _save(fig, dest / "sqnr_per_layer.png")
    return "sqnr_per_layer.png", "int8 SQNR per Keras layer and backend (diagnose); lost layers at 0 dB"


def _plots(parity: dict | None, bench: dict | None, dest: Path, diag: dict | None = None) -> list[tuple[str, str]]:
    """Write the PNG charts into dest; return [(file name, caption)]."""
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
    if parity and bench and parity["results"]:
        points = _quality_points(parity, bench)
        if points:
            made.append(_accuracy_chart(parity, points, dest))
    return made


def _md_table_to_html(md: str) -> str:
    """Our own Markdown (headings, paragraphs, pipe tables) to HTML; escaped."""
    out, table = [], []

    def flush() -> None:
        if not table:
            return
        rows = [[html.escape(c.strip()) for c in ln.strip().strip("|").split("|")] for ln in table
                if not ln.startswith("|---")]
        out.append("<table><thead><tr>" + "".join(f"<th>{c}</th>" for c in rows[0]) + "</tr></thead><tbody>"
                   + "".join("<tr>" + "".join(f"<td class='{'fail' if c.startswith('FAIL') else ''}'>{c}</td>"
                                              for c in r) + "</tr>" for r in rows[1:]) + "</tbody></table>")
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

# The tiny script only marks, for tests and people, that every chart decoded.
_SCRIPT = ("<script>window.addEventListener('load',()=>{const i=[...document.images];"
           "document.body.dataset.imagesOk=String(i.filter(x=>x.complete&&x.naturalWidth>0).length);"
           "document.body.dataset.imagesTotal=String(i.length);});</script>")


def _page(model: str, sections_md: list[str], plots: list[tuple[str, str]], dest: Path) -> str:
    figs = []
    for name, cap in plots:
        data = base64.b64encode((dest / name).read_bytes()).decode()
        figs.append(f"<figure><img alt='{html.escape(cap)}' src='data:image/png;base64,{data}'>"
                    f"<figcaption>{html.escape(cap)}</figcaption></figure>")
    body = "\n".join(_md_table_to_html(s) for s in sections_md)
    title = f"resnet-deploy report: {html.escape(model)}"
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>{_CSS}</style></head>"
            f"<body><h1>{title}</h1>\n{body}\n" + "\n".join(figs) + _SCRIPT + "</body></html>\n")


def render(parity: dict | None, bench: dict | None, dest: Path, diag: dict | None = None) -> dict[str, Any]:
    """Write index.html (self-contained: images inlined as data URIs), report.md and the PNGs
    into dest, built in a staging folder and swapped in whole."""
    model = (parity or bench or diag or {}).get("model", "model")
    sections_md = ([parity_markdown(ParityReport.from_dict(parity))] if parity else []) + \
                  ([latency_markdown(bench)] if bench else []) + ([diagnose_markdown(diag)] if diag else [])
    with staging_dir(dest) as staging:
        plots = _plots(parity, bench, staging, diag)
        write_text_atomic(staging / "report.md", f"# resnet-deploy report: {model}\n\n" + "\n".join(sections_md)
                          + "\n" + "\n".join(f"![{cap}]({name})\n" for name, cap in plots))
        write_text_atomic(staging / "index.html", _page(model, sections_md, plots, staging))
        publish_dir(staging, dest)
    return {"html": str(dest / "index.html"), "markdown": str(dest / "report.md"), "images": [n for n, _ in plots]}


def write_report(req: ReportRequest) -> dict[str, Any]:
    """The `report` command: the model's last parity.json and bench.json under --out, rendered."""
    ws = Workspace(req.out)
    name = ModelRef(req.model).workspace_name
    parity, bench = ws.read_result(ws.parity_json(name), "parity"), ws.read_result(ws.bench_json(name), "bench")
    diag = ws.read_result(ws.model_dir(name) / "diagnose.json", "diagnose")
    if parity is None and bench is None and diag is None:
        raise InputError(f"No parity.json, bench.json or diagnose.json under {str(ws.model_dir(name))!r}; run "
                         f"`parity --model {req.model}`, `bench` or `diagnose` first.")
    try:
        return render(parity, bench, req.dest or ws.report_dir(name), diag)
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"the parity/bench results under {str(ws.model_dir(name))!r} are incomplete ({e}); "
                         "re-run `parity` and `bench`.") from e
