"""The one latency protocol, the same for every runtime (see ../shared/DESIGN.md):
warm-up of at least `warmup_runs` and `warmup_s`, then at least `runs` and `seconds`, each call
timed with perf_counter_ns around the runtime's own call (Runner.run_raw) only."""
from __future__ import annotations

import resource
import time
from dataclasses import asdict, dataclass

import numpy as np

from resnet_deploy.runner import Runner


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


def peak_rss_mb() -> float:
    """Peak resident set size of this process image so far.

    VmHWM belongs to the address space and restarts at exec; ru_maxrss does not (a worker
    forked from a 600 MB parent would report 600 MB), so it is only the fallback.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def measure(runner: Runner, x: np.ndarray, protocol: Protocol = Protocol()) -> LatencyStats:
    """Time runner.run_raw on one prepared batch; the runner must be active."""
    prepared = runner.prepare(x)
    t0 = time.perf_counter_ns()
    runner.run_raw(prepared)
    first_ms = (time.perf_counter_ns() - t0) / 1e6
    start, n = time.perf_counter(), 0
    while n < protocol.warmup_runs or time.perf_counter() - start < protocol.warmup_s:
        runner.run_raw(prepared)
        n += 1
    times: list[int] = []
    start = time.perf_counter()
    while (len(times) < protocol.runs or time.perf_counter() - start < protocol.seconds) and len(times) < protocol.max_runs:
        t = time.perf_counter_ns()
        runner.run_raw(prepared)
        times.append(time.perf_counter_ns() - t)
    ms = np.asarray(times, dtype=np.float64) / 1e6
    batch = int(x.shape[0])
    return LatencyStats(
        runs=len(ms), first_ms=first_ms, p50=float(np.percentile(ms, 50)), p90=float(np.percentile(ms, 90)),
        p99=float(np.percentile(ms, 99)), mean=float(ms.mean()), std=float(ms.std()), min=float(ms.min()),
        throughput=float(batch * 1000.0 / ms.mean()), batch=batch, peak_rss_mb=peak_rss_mb(),
    )
