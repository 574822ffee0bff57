"""Export resnet18 and resnet50 at 224 to every target in fp32 and int8 and print the latency table.

    python benchmarks/latency_table.py [--threads 2] [--out benchmarks/out]

Random-init weights and synthetic calibration: these numbers are about speed only (a random
ResNet's int8 outputs say nothing about accuracy; see the parity suite on `digits` for that).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from resnet_deploy.measure.bench import run_bench  # noqa: E402
from resnet_deploy.models.source import ModelRef  # noqa: E402
from resnet_deploy.progress import ConsoleProgress  # noqa: E402
from resnet_deploy.reporting.markdown import latency_markdown  # noqa: E402
from resnet_deploy.requests import ArtifactOptions, BenchRequest  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="resnet18,resnet50")
    p.add_argument("--threads", default="2")
    p.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    args = p.parse_args()
    tables = []
    for model in args.models.split(","):
        req = BenchRequest(
            ModelRef(model, input_size=224),
            "all",
            "fp32,int8",
            tuple(int(t) for t in args.threads.split(",")),
            options=ArtifactOptions(calib="synthetic", calib_size=32),
            out=args.out,
        )
        result = run_bench(req, ConsoleProgress())
        tables.append(latency_markdown(result.to_dict()))
    print("\n".join(tables))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from results import recorded

    with recorded("latency"):
        main()
