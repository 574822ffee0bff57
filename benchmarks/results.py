"""Every benchmark's table, kept beside it: `RESULTS-<name>.md` holds what the script printed,
under the command that printed it, the date, the CPU (model, architecture, cores and the features
that change kernels) and the versions of what it measured. The next run replaces it: a result
is what the latest run saw, never a history.

    with recorded("latency"):
        main()
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import io
import os
import platform
import sys
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
VERSIONED = (
    "tensorflow-cpu",
    "keras",
    "ai-edge-litert",
    "onnxruntime",
    "openvino",
    "nncf",
    "tf2onnx",
    "numpy",
    "ansible-core",
    "mutmut",
)


class _Tee(io.TextIOBase):
    def __init__(self, *streams: io.TextIOBase) -> None:
        self.streams = streams

    def write(self, text: str) -> int:
        for s in self.streams:
            s.write(text)
        return len(text)

    def flush(self) -> None:
        for s in self.streams:
            s.flush()


def header(name: str, argv: list[str]) -> str:
    """The facts a number needs: command, date, CPU, versions."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from resnet_deploy.backend.cpu import cpu_info
    from resnet_deploy.versions import versions

    cpu = cpu_info()
    feats = ", ".join(f for f, on in cpu["features"].items() if on) or "none of " + ", ".join(cpu["features"])
    vers = ", ".join(f"{k} {v}" for k, v in versions(*VERSIONED).items())
    cmd = " ".join(["python", os.path.relpath(argv[0], ROOT) if Path(argv[0]).is_absolute() else argv[0], *argv[1:]])
    return (
        f"# Results: {name}\n\n"
        f"- command: `{cmd}`\n"
        f"- date: {_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}\n"
        f"- CPU: {cpu['model'] or 'unknown'} ({platform.machine()}, {os.cpu_count()} CPUs; features: {feats})\n"
        f"- versions: Python {platform.python_version()}, {vers}\n\n"
    )


@contextlib.contextmanager
def recorded(name: str, argv: list[str] | None = None) -> Iterator[Path]:
    """Print as usual and, when the block ends without an error, write benchmarks/RESULTS-<name>.md."""
    path = ROOT / "benchmarks" / f"RESULTS-{name}.md"
    buf = io.StringIO()
    with contextlib.redirect_stdout(_Tee(sys.stdout, buf)):
        yield path
    path.write_text(header(name, argv or sys.argv) + buf.getvalue().strip() + "\n")
    print(f"\nwritten: {path.relative_to(ROOT)}", file=sys.stderr)
