"""Long loops on a terminal show a bar with the count, the rate and the time left, weighted by
what an item holds (a batch of samples); off a terminal they show nothing extra."""

from __future__ import annotations

import io
import re

from rich.console import Console

from resnet_deploy.progress import ConsoleProgress


def test_a_bar_counts_samples_not_batches():
    p = ConsoleProgress()
    buf = io.StringIO()
    p.console = Console(file=buf, force_terminal=True, width=120)
    batches = [list(range(32))] * 3 + [list(range(4))]
    seen = list(p.track(batches, 100, "parity", weight=len))
    assert seen == batches
    text = buf.getvalue()
    assert "parity" in text and "100/100" in text and "/s" in text
    assert re.search(r"\d+:\d\d:\d\d", text), text  # the time left


def test_under_json_a_terminal_gets_no_bar():
    p = ConsoleProgress(bars=False)
    buf = io.StringIO()
    p.console = Console(file=buf, force_terminal=True, width=120)
    items = [1, 2, 3]
    assert p.track(items, 3, "x") is items and buf.getvalue() == ""


def test_off_a_terminal_items_pass_through_silently():
    p = ConsoleProgress()
    buf = io.StringIO()
    p.console = Console(file=buf, force_terminal=False)
    items = [1, 2, 3]
    assert p.track(items, 3, "x") is items and buf.getvalue() == ""
