"""How long `diagnose` takes, and how much memory, on a real-size network.

    python benchmarks/diagnose_speed.py [--model resnet18] [--input-size 224] [--n 16] [--out benchmarks/out/diag]

Exports the fp32 and int8 artifacts of every backend first (not timed: they are reused), then
times the diagnosis of all three backends in this process and reports its peak RSS.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from resnet_deploy.quantize.diagnose_run import run_diagnose  # noqa: E402
from resnet_deploy.models.source import ModelRef  # noqa: E402
from resnet_deploy.exporting.pipeline import ensure_artifact, load  # noqa: E402
from resnet_deploy.portable.protocol import peak_rss_mb  # noqa: E402
from resnet_deploy.progress import ConsoleProgress  # noqa: E402
from resnet_deploy.requests import ArtifactOptions, DiagnoseRequest  # noqa: E402
from resnet_deploy.store.workspace import Workspace  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet18")
    p.add_argument("--input-size", type=int, default=224)
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--out", type=Path, default=Path("benchmarks/out/diag"))
    args = p.parse_args()
    progress = ConsoleProgress()
    ref, options = ModelRef(args.model, input_size=args.input_size), ArtifactOptions(calib="synthetic", calib_size=32)
    loaded = load(ref, options, progress)
    for t in ("tflite", "onnx", "openvino"):
        for precision in ("fp32", "int8"):
            ensure_artifact(Workspace(args.out), loaded, t, precision, progress)
    t0 = time.perf_counter()
    res = run_diagnose(DiagnoseRequest(ref, "all", "synthetic", args.n, options=options, out=args.out), progress)
    seconds = time.perf_counter() - t0
    layers = len(res.layers)
    print(
        f"diagnose {args.model} @{args.input_size}, {args.n} samples, 3 backends, {layers} Keras layers: "
        f"{seconds:.1f} s wall, peak RSS {peak_rss_mb():.0f} MB (this process, exports included before timing)"
    )


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from results import recorded

    with recorded("diagnose_speed"):
        main()
