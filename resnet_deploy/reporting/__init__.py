"""What a user reads: Markdown tables for the terminal, charts, and the offline HTML report."""

from resnet_deploy.lazy import public

_WHERE = {
    "write_report": "html",
    "parity_markdown": "markdown",
    "latency_markdown": "markdown",
}
__all__ = list(_WHERE)
__getattr__, __dir__ = public(__name__, _WHERE)
