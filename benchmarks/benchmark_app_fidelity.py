"""Does our latency protocol agree with OpenVINO's own benchmark_app on the same IR and threads?

    python benchmarks/benchmark_app_fidelity.py [--model resnet50] [--threads 2] [--out benchmarks/out]

benchmark_app refuses -nthreads together with -hint latency, so the like-for-like run is
`-hint none -nstreams 1 -nthreads N -api sync` (plus `-infer_precision f32`, which our runner
sets for every artifact); a second run with `-hint latency -api sync` and no thread cap is shown
for reference. Our number is the p50 of resnet-deploy's protocol in a fresh process.
Throughput: our `bench --mode throughput` (THROUGHPUT hint, AsyncInferQueue, batch 1, all
threads) against `benchmark_app -hint throughput -api async` on the same IR.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from resnet_deploy.exporting import pipeline  # noqa: E402
from resnet_deploy.measure.bench import BenchJob, run_in_subprocess  # noqa: E402
from resnet_deploy.portable.constants import DEFAULT_PROTOCOL  # noqa: E402
from resnet_deploy.progress import ConsoleProgress  # noqa: E402
from resnet_deploy.requests import ArtifactOptions  # noqa: E402
from resnet_deploy.store.workspace import Workspace  # noqa: E402


def benchmark_app(xml: Path, shape: str, args: list[str], seconds: int, metric: str = "median") -> float:
    exe = shutil.which("benchmark_app")
    cmd = [
        exe or sys.executable,
        *([] if exe else ["-m", "openvino.tools.benchmark.main"]),
        "-m",
        str(xml),
        "-d",
        "CPU",
        "-shape",
        shape,
        "-t",
        str(seconds),
        "-infer_precision",
        "f32",
        *args,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    pattern = r"Throughput:\s+([\d.]+)\s*FPS" if metric == "fps" else r"Median:\s+([\d.]+)\s*ms"
    m = re.search(pattern, proc.stdout)
    if proc.returncode != 0 or not m:
        raise SystemExit(f"benchmark_app failed ({proc.returncode}): {(proc.stdout + proc.stderr)[-800:]}")
    return float(m.group(1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet50")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seconds", type=int, default=15)
    p.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    args = p.parse_args()
    progress = ConsoleProgress()
    from resnet_deploy.models.source import ModelRef

    loaded = pipeline.load(
        ModelRef(args.model, input_size=224), ArtifactOptions(calib="synthetic", calib_size=32), progress
    )
    name = loaded.name
    rows, tp_rows = [], []
    for precision in ("fp32", "int8"):
        a = pipeline.ensure_artifact(Workspace(args.out), loaded, "openvino", precision, progress)
        with progress.step(f"resnet-deploy protocol on {precision}"):
            protocol = dict(DEFAULT_PROTOCOL, warmup_s=2.0, seconds=float(args.seconds))
            ours = run_in_subprocess(BenchJob("artifact", args.threads, 1, artifact=str(a.path), protocol=protocol))[
                "p50"
            ]
        shape = "[1,224,224,3]"
        with progress.step(f"benchmark_app -hint none -nstreams 1 -nthreads {args.threads} -api sync on {precision}"):
            ba = benchmark_app(
                a.model_file,
                shape,
                ["-hint", "none", "-nstreams", "1", "-nthreads", str(args.threads), "-api", "sync"],
                args.seconds,
            )
        with progress.step(f"benchmark_app -hint latency -api sync on {precision}"):
            ba_lat = benchmark_app(a.model_file, shape, ["-hint", "latency", "-api", "sync"], args.seconds)
        rows.append((precision, ours, ba, ba_lat))
        with progress.step(f"resnet-deploy throughput mode on {precision}"):
            ours_tp = run_in_subprocess(
                BenchJob("artifact", args.threads, 1, artifact=str(a.path), protocol=protocol, mode="throughput")
            )
        with progress.step(f"benchmark_app -hint throughput -api async on {precision}"):
            ba_tp = benchmark_app(a.model_file, shape, ["-hint", "throughput", "-api", "async"], args.seconds, "fps")
        tp_rows.append((precision, ours_tp, ba_tp))
    print(
        f"| {name} @224, {args.threads} threads | resnet-deploy p50 ms | benchmark_app median ms "
        f"(-hint none -nthreads {args.threads} -api sync) | diff | benchmark_app median ms (-hint latency -api sync) | diff |"
    )
    print("|---|---|---|---|---|---|")
    for precision, ours, ba, ba_lat in rows:
        print(
            f"| {precision} | {ours:.2f} | {ba:.2f} | {100 * (ours - ba) / ba:+.1f}% | {ba_lat:.2f} | "
            f"{100 * (ours - ba_lat) / ba_lat:+.1f}% |"
        )
    print(
        f"\n| {name} @224, throughput, batch 1 | resnet-deploy `bench --mode throughput` inf/s (streams, requests) "
        "| benchmark_app FPS (-hint throughput -api async) | diff |"
    )
    print("|---|---|---|---|")
    for precision, ours, ba in tp_rows:
        print(
            f"| {precision} | {ours['throughput']:.1f} ({ours['streams']} streams, "
            f"{ours['settings']['infer_requests']} requests) | {ba:.1f} | {100 * (ours['throughput'] - ba) / ba:+.1f}% |"
        )


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from results import recorded

    with recorded("benchmark_app"):
        main()
