"""What the report and the terminal show, as data: a Section holds a title and blocks (lines of
text and Tables), built once from a command's result and rendered as Markdown (the terminal,
report.md) or HTML (the report page). The HTML is made from the Sections, never by reading
Markdown back."""

from __future__ import annotations

import html
from dataclasses import dataclass, field

COLLAPSE_ROWS = 12  # a longer table is folded under its summary line on the HTML page


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)

    def markdown(self) -> list[str]:
        return [
            "| " + " | ".join(self.headers) + " |",
            "|" + "---|" * len(self.headers),
            *("| " + " | ".join(r) + " |" for r in self.rows),
        ]

    def html(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.headers)
        body = "".join("<tr>" + "".join(f"<td{_cls(c)}>{html.escape(c)}</td>" for c in r) + "</tr>" for r in self.rows)
        table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        if len(self.rows) <= COLLAPSE_ROWS:
            return table
        return f"<details><summary>{len(self.rows)} rows (click to open)</summary>{table}</details>"


def _cls(cell: str) -> str:
    if cell.startswith(("FAIL", "LOST")):
        return " class='fail'"
    return " class='ok'" if cell in ("ok", "pass") else ""


Block = str | Table


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)
    heading: bool = True  # "### title" first in Markdown (False: the blocks alone)

    def markdown(self) -> str:
        lines = [f"### {self.title}", ""] if self.heading else []
        for b in self.blocks:
            lines += b.markdown() if isinstance(b, Table) else [b]
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        parts = [f"<h2>{html.escape(self.title)}</h2>"]
        for b in self.blocks:
            if isinstance(b, Table):
                parts.append(b.html())
            elif b.strip():
                parts.append(f"<p>{html.escape(b.strip())}</p>")
        return "<section>" + "\n".join(parts) + "</section>"
