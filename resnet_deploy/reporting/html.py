"""The `report` command: an offline HTML page (charts inlined) and report.md from the model's
last results, found through the workspace: parity, latency, throughput, per-layer profile and
diagnose tables, and the charts of charts.py."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any, cast

from resnet_deploy.errors import InputError
from resnet_deploy.store.fsutil import publish_dir, staging_dir, write_text_atomic
from resnet_deploy.models.source import ModelRef
from resnet_deploy.evaluate.parity import ParityReport
from resnet_deploy.reporting.markdown import (
    diagnose_markdown,
    latency_markdown,
    parity_markdown,
    profile_markdown,
    throughput_markdown,
)
from resnet_deploy.reporting.charts import plots
from resnet_deploy.requests import ReportRequest
from resnet_deploy.store.workspace import Workspace


def _md_table_to_html(md: str) -> str:
    """Our own Markdown (headings, paragraphs, pipe tables) to HTML; escaped."""
    out: list[str] = []
    table: list[str] = []

    def flush() -> None:
        if not table:
            return
        rows = [
            [html.escape(c.strip()) for c in ln.strip().strip("|").split("|")]
            for ln in table
            if not ln.startswith("|---")
        ]
        out.append(
            "<table><thead><tr>"
            + "".join(f"<th>{c}</th>" for c in rows[0])
            + "</tr></thead><tbody>"
            + "".join(
                "<tr>" + "".join(f"<td class='{'fail' if c.startswith('FAIL') else ''}'>{c}</td>" for c in r) + "</tr>"
                for r in rows[1:]
            )
            + "</tbody></table>"
        )
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
_SCRIPT = (
    "<script>window.addEventListener('load',()=>{const i=[...document.images];"
    "document.body.dataset.imagesOk=String(i.filter(x=>x.complete&&x.naturalWidth>0).length);"
    "document.body.dataset.imagesTotal=String(i.length);});</script>"
)


def _page(model: str, sections_md: list[str], plots: list[tuple[str, str]], dest: Path) -> str:
    figs = []
    for name, cap in plots:
        data = base64.b64encode((dest / name).read_bytes()).decode()
        figs.append(
            f"<figure><img alt='{html.escape(cap)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{html.escape(cap)}</figcaption></figure>"
        )
    body = "\n".join(_md_table_to_html(s) for s in sections_md)
    title = f"resnet-deploy report: {html.escape(model)}"
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>{_CSS}</style></head>"
        f"<body><h1>{title}</h1>\n{body}\n" + "\n".join(figs) + _SCRIPT + "</body></html>\n"
    )


def render(results: dict[str, dict | None], dest: Path) -> dict[str, Any]:
    """Write index.html (self-contained: images inlined as data URIs), report.md and the PNGs
    into dest, built in a staging folder and swapped in whole. results: the model's parity,
    bench, throughput, diagnose and profile results (any may be None)."""
    model = next((r["model"] for r in results.values() if r), "model")
    parts = (
        ("parity", lambda d: parity_markdown(ParityReport.from_dict(d))),
        ("bench", latency_markdown),
        ("throughput", throughput_markdown),
        ("profile", profile_markdown),
        ("diagnose", diagnose_markdown),
    )
    sections_md = [render_md(cast(dict, results[k])) for k, render_md in parts if results.get(k)]
    with staging_dir(dest) as staging:
        made = plots(results, staging)
        write_text_atomic(
            staging / "report.md",
            f"# resnet-deploy report: {model}\n\n"
            + "\n".join(sections_md)
            + "\n"
            + "\n".join(f"![{cap}]({name})\n" for name, cap in made),
        )
        write_text_atomic(staging / "index.html", _page(model, sections_md, made, staging))
        publish_dir(staging, dest)
    return {"html": str(dest / "index.html"), "markdown": str(dest / "report.md"), "images": [n for n, _ in made]}


REPORTED = ("parity", "bench", "throughput", "profile", "diagnose")  # the results the report renders


def write_report(req: ReportRequest) -> dict[str, Any]:
    """The `report` command: the model's last results under --out, rendered."""
    ws = Workspace(req.out)
    name = ModelRef(req.model).workspace_name
    results = {kind: ws.read_result(ws.result(name, kind), kind) for kind in REPORTED}
    if not any(results.values()):
        raise InputError(
            f"No {', '.join(ws.result(name, k).name for k in REPORTED)} under {str(ws.model_dir(name))!r}; run "
            f"`parity --model {req.model}`, `bench` or `diagnose` first."
        )
    try:
        return render(results, req.dest or ws.report_dir(name))
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(
            f"the results under {str(ws.model_dir(name))!r} are incomplete ({e}); re-run `parity` and `bench`."
        ) from e
