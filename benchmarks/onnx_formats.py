"""ONNX Runtime int8 formats side by side on this CPU: fp32, QDQ U8S8, QDQ S8S8, QOperator U8S8.

    python benchmarks/onnx_formats.py [--model resnet18] [--threads 2] [--repeats 3] [--out benchmarks/out]

Each format is exported into its own workspace (random-init weights, synthetic calibration:
speed only) and timed with the one latency protocol in a fresh process, `--repeats` times in
turn so that drift on a noisy machine hits every format alike. Prints the CPU it ran on, the
median p50 of each format and its ratio to fp32: what `--onnx-format auto` should pick here.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from resnet_deploy.measure.bench import BenchJob, run_in_subprocess  # noqa: E402
from resnet_deploy.backend.cpu import cpu_info  # noqa: E402
from resnet_deploy.models.source import ModelRef  # noqa: E402
from resnet_deploy.exporting.pipeline import ensure_artifact, load  # noqa: E402
from resnet_deploy.progress import ConsoleProgress  # noqa: E402
from resnet_deploy.requests import ArtifactOptions  # noqa: E402
from resnet_deploy.store.workspace import Workspace  # noqa: E402

FORMATS = [("fp32", None), ("int8", "auto"), ("int8", "qdq-u8s8"), ("int8", "qdq-s8s8"), ("int8", "qoperator-u8s8")]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet18")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, default=Path("benchmarks/out/onnx-formats"))
    args = p.parse_args()
    progress = ConsoleProgress()
    ref = ModelRef(args.model, input_size=224)
    paths = {}
    for precision, fmt in FORMATS:
        loaded = load(
            ref, ArtifactOptions(calib="synthetic", calib_size=32, target_options={"onnx_format": fmt}), progress
        )
        a = ensure_artifact(Workspace(args.out / (fmt or "fp32")), loaded, "onnx", precision, progress)
        paths[fmt or "fp32"] = str(a.path)
    name = loaded.name
    p50s: dict[str, list[float]] = {k: [] for k in paths}
    for i in range(args.repeats):
        for label, path in paths.items():
            with progress.step(f"[{i + 1}/{args.repeats}] timing {label}"):
                p50s[label].append(run_in_subprocess(BenchJob("artifact", args.threads, 1, artifact=path))["p50"])
    cpu = cpu_info()
    feats = ", ".join(k for k, v in cpu["features"].items() if v) or "none"
    print(
        f"CPU: {cpu['model']} ({cpu['arch']}; {feats}); {name} @224, batch 1, {args.threads} threads, "
        f"median of {args.repeats} runs\n"
    )
    print("| format | p50 ms (median) | all runs | vs fp32 |\n|---|---|---|---|")
    base = statistics.median(p50s["fp32"])
    for label, runs in p50s.items():
        med = statistics.median(runs)
        print(f"| {label} | {med:.2f} | {', '.join(f'{r:.2f}' for r in runs)} | {base / med:.2f}x |")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from results import recorded

    with recorded("onnx_formats"):
        main()
