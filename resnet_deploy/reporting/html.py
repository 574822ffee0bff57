"""The `report` command: an offline HTML page (charts inlined) and report.md from the model's
last results, found through the workspace. The page opens on one screen that says what a team
asks first (summary.py: verdict, accuracy, speed-up, size per artifact; machine, versions, date),
then the charts (charts.py), then the detailed sections (markdown.py) with long tables folded."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from resnet_deploy.errors import InputError
from resnet_deploy.store.fsutil import publish_dir, staging_dir, write_text_atomic
from resnet_deploy.models.source import ModelRef
from resnet_deploy.evaluate.parity import ParityReport
from resnet_deploy.reporting.doc import Section
from resnet_deploy.reporting.markdown import (
    diagnose_section,
    latency_section,
    parity_section,
    profile_section,
    throughput_section,
)
from resnet_deploy.reporting.summary import machine_line, matrix_section, summary_section
from resnet_deploy.reporting.charts import plots
from resnet_deploy.requests import ReportRequest
from resnet_deploy.store.record import Record
from resnet_deploy.store.workspace import Workspace


_CSS = """body{font-family:system-ui,sans-serif;margin:1.5em 2em;max-width:1400px;color:#222}
h1{margin:0 0 .2em;font-size:1.6em}.meta{color:#555;font-size:13px;margin:0 0 1em}
table{border-collapse:collapse;margin:.6em 0;font-size:13px}th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}td.fail{color:#b00;font-weight:bold}
td.ok{color:#070;font-weight:bold}details{margin:.5em 0}summary{cursor:pointer;color:#036}
.summary table{font-size:15px}.charts{display:flex;flex-wrap:wrap;gap:1em}
figure{margin:0;flex:1 1 560px;max-width:100%}img{max-width:100%;border:1px solid #eee}
figcaption{font-size:12px;color:#555}"""

# The tiny script only marks, for tests and people, that every chart decoded, how large each is
# drawn, and where the summary ends (it must fit the first screen).
_SCRIPT = (
    "<script>window.addEventListener('load',()=>{const i=[...document.images],d=document.body.dataset;"
    "d.imagesOk=String(i.filter(x=>x.complete&&x.naturalWidth>0).length);d.imagesTotal=String(i.length);"
    "d.imageSizes=i.map(x=>Math.round(x.width)+'x'+Math.round(x.height)).join(',');"
    "d.summaryBottom=String(Math.round(document.querySelector('.summary').getBoundingClientRect().bottom));});"
    "</script>"
)


def _page(model: str, head: str, sections: list[Section], plots: list[tuple[str, str]], dest: Path) -> str:
    figs = []
    for name, cap in plots:
        data = base64.b64encode((dest / name).read_bytes()).decode()
        figs.append(
            f"<figure><img alt='{html.escape(cap)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{html.escape(cap)}</figcaption></figure>"
        )
    summary, details = sections[0], sections[1:]
    title = f"resnet-deploy report: {html.escape(model)}"
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>{_CSS}</style></head>"
        f"<body><h1>{title}</h1><p class='meta'>{html.escape(head)}</p>\n"
        f"<div class='summary'>{summary.html()}</div>\n<div class='charts'>{''.join(figs)}</div>\n"
        + "\n".join(s.html() for s in details)
        + _SCRIPT
        + "</body></html>\n"
    )


@dataclass(frozen=True)
class ModelReport(Record):
    """One model's report: the page, the Markdown and the charts written."""

    model: str
    html: str
    markdown: str
    images: list[str]


@dataclass(frozen=True)
class ReportResult(Record):
    """The reports written, one per model."""

    reports: list[ModelReport]


def render(results: dict[str, dict | None], dest: Path) -> ModelReport:
    """Write index.html (self-contained: images inlined as data URIs), report.md and the PNGs
    into dest, built in a staging folder and swapped in whole. results: the model's parity,
    bench, throughput, diagnose and profile results (any may be None)."""
    import datetime

    model = next((r["model"] for r in results.values() if r), "model")
    parts = (
        ("matrix", matrix_section),
        ("parity", lambda d: parity_section(ParityReport.from_dict(d))),
        ("bench", latency_section),
        ("throughput", throughput_section),
        ("profile", profile_section),
        ("diagnose", diagnose_section),
    )
    sections = [summary_section(results)] + [make(cast(dict, results[k])) for k, make in parts if results.get(k)]
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    head = (
        f"Made {now} from the last {', '.join(k for k in REPORTED if results.get(k))} results. {machine_line(results)}"
    )
    with staging_dir(dest) as staging:
        made = plots(results, staging)
        write_text_atomic(
            staging / "report.md",
            f"# resnet-deploy report: {model}\n\n{head}\n\n"
            + "\n".join(s.markdown() for s in sections)
            + "\n"
            + "\n".join(f"![{cap}]({name})\n" for name, cap in made),
        )
        write_text_atomic(staging / "index.html", _page(model, head, sections, made, staging))
        publish_dir(staging, dest)
    return ModelReport(model, str(dest / "index.html"), str(dest / "report.md"), [n for n, _ in made])


REPORTED = ("parity", "bench", "throughput", "profile", "diagnose")  # the results the report renders


def write_report(req: ReportRequest) -> ReportResult:
    """The `report` command: the last results of the model (default: of every model with results
    under --out), rendered; with several models and --dest, each goes to DEST/<model>."""
    ws = Workspace(req.out)
    if req.model is not None:
        return ReportResult([_model_report(ws, ModelRef(req.model).workspace_name, req.model, req.dest)])
    names = ws.models_with(REPORTED)
    if not names:
        raise InputError(
            f"No results under {str(ws.root)!r}; run `parity`, `bench` or `diagnose` first (or pass --model)."
        )
    dests = [req.dest / n if req.dest is not None and len(names) > 1 else req.dest for n in names]
    return ReportResult([_model_report(ws, n, n, d) for n, d in zip(names, dests)])


def _model_report(ws: Workspace, name: str, asked: str, dest: Path | None) -> ModelReport:
    """One model's results rendered into dest (default OUT/<model>/report)."""
    results = {kind: ws.read_result(ws.result(name, kind), kind) for kind in REPORTED}
    if not any(results.values()):
        raise InputError(
            f"No {', '.join(ws.result(name, k).name for k in REPORTED)} under {str(ws.model_dir(name))!r}; run "
            f"`parity --model {asked}`, `bench` or `diagnose` first."
        )
    matrix = ws.read_result(ws.matrix_json(), "matrix")
    if matrix and name in matrix["models"]:  # the last matrix run covered this model: its whole table
        results["matrix"] = matrix
    try:
        return render(results, dest or ws.report_dir(name))
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(
            f"the results under {str(ws.model_dir(name))!r} are incomplete ({e}); re-run `parity` and `bench`."
        ) from e
