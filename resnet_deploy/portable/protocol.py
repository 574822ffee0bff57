"""The latency protocol, the same code on the host and on every device."""
import resource
import time

import numpy as np

from .constants import DEFAULT_PROTOCOL


def peak_rss_mb():
    """Peak RSS of this process image (VmHWM restarts at exec; ru_maxrss does not)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _stats(times_ns, first_ms, batch):
    ms = np.asarray(times_ns, dtype=np.float64) / 1e6
    return {"runs": int(len(ms)), "first_ms": first_ms, "p50": float(np.percentile(ms, 50)),
            "p90": float(np.percentile(ms, 90)), "p99": float(np.percentile(ms, 99)), "mean": float(ms.mean()),
            "std": float(ms.std()), "min": float(ms.min()), "throughput": float(batch * 1000.0 / ms.mean()),
            "batch": int(batch), "peak_rss_mb": peak_rss_mb()}


def time_calls(run, prepared, batch, protocol=None):
    """First call, warm-up (>= warmup_runs and warmup_s), then >= runs and seconds of timed calls,
    each timed with perf_counter_ns around `run(prepared)` only."""
    p = dict(DEFAULT_PROTOCOL, **(protocol or {}))
    t0 = time.perf_counter_ns()
    run(prepared)
    first_ms = (time.perf_counter_ns() - t0) / 1e6
    start, n = time.perf_counter(), 0
    while n < p["warmup_runs"] or time.perf_counter() - start < p["warmup_s"]:
        run(prepared)
        n += 1
    times = []
    start = time.perf_counter()
    while (len(times) < p["runs"] or time.perf_counter() - start < p["seconds"]) and len(times) < p["max_runs"]:
        t = time.perf_counter_ns()
        run(prepared)
        times.append(time.perf_counter_ns() - t)
    return _stats(times, first_ms, batch)
