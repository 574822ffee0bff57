"""The one latency protocol, the same for every runtime (see ../shared/DESIGN.md):
warm-up of at least `warmup_runs` and `warmup_s`, then at least `runs` and `seconds`, each call
timed with perf_counter_ns around the runtime's own call (Runner.run_raw) only."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from resnet_deploy.runner import Runner
from resnet_deploy.selftest import time_calls  # the one protocol, shared with devices


@dataclass(frozen=True)
class Protocol:
    warmup_runs: int = 10
    warmup_s: float = 1.0
    runs: int = 50
    seconds: float = 2.0
    max_runs: int = 100_000


@dataclass(frozen=True)
class LatencyStats:
    """Milliseconds unless named otherwise."""

    runs: int
    first_ms: float
    p50: float
    p90: float
    p99: float
    mean: float
    std: float
    min: float
    throughput: float  # inferences per second at this batch size
    batch: int
    peak_rss_mb: float

    def to_dict(self) -> dict:
        return asdict(self)


def measure(runner: Runner, x: np.ndarray, protocol: Protocol = Protocol()) -> LatencyStats:
    """Time runner.run_raw on one prepared batch; the runner must be active."""
    prepared = runner.prepare(x)
    return LatencyStats(**time_calls(runner.run_raw, prepared, int(x.shape[0]), asdict(protocol)))
