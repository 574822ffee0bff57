"""Throughput mode: what a server gets with every core busy.

Latency mode times one request at a time with all threads on it. A server instead keeps several
requests in flight: each runtime has its own idiomatic way, chosen per runner (`Runner.throughput`):

- OpenVINO: `PERFORMANCE_HINT=THROUGHPUT` (the plugin picks the number of streams for this CPU)
  and an `AsyncInferQueue` of `OPTIMAL_NUMBER_OF_INFER_REQUESTS`, as `benchmark_app -hint
  throughput` does (targets/openvino/__init__.py).
- ONNX Runtime: one session (its `run` is thread-safe) called from N Python threads at once, one
  intra-op thread each: ORT's documented way to serve concurrent requests; the GIL is released
  inside `run`. `run_async` exists but queues onto the same intra-op pool.
- LiteRT: an Interpreter is not thread-safe, so one interpreter per stream (one thread each),
  N threads; `invoke` releases the GIL.
- Keras: one stream, TensorFlow's own intra-op threads (the baseline).

The protocol: every stream runs requests back to back; requests that start before the warm-up
ends are not counted; streams stop starting requests after `seconds` (and once each has done
MIN_REQUESTS_PER_STREAM). Throughput = inferences (requests x batch) of the counted requests /
the time from the end of warm-up to the last counted completion; latency percentiles are those of
the counted requests under that load.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import numpy as np

MIN_REQUESTS_PER_STREAM = 4


def window_stats(spans: list[tuple[int, int]], t_warm: int, batch: int, streams: int, settings: dict) -> dict:
    """Throughput and latency under load from (start_ns, end_ns) of every request."""
    from resnet_deploy.portable.protocol import peak_rss_mb

    counted = [(s, e) for s, e in spans if s >= t_warm]
    if not counted:
        raise RuntimeError("no request completed after the warm-up; raise --seconds")
    ms = np.array([(e - s) / 1e6 for s, e in counted])
    elapsed_s = (max(e for _, e in counted) - t_warm) / 1e9
    return {
        "requests": len(counted),
        "seconds": elapsed_s,
        "batch": batch,
        "streams": streams,
        "throughput": len(counted) * batch / elapsed_s,
        "p50": float(np.percentile(ms, 50)),
        "p90": float(np.percentile(ms, 90)),
        "p99": float(np.percentile(ms, 99)),
        "mean": float(ms.mean()),
        "settings": settings,
        "peak_rss_mb": peak_rss_mb(),
    }


def drive(workers: list[Callable[[], Any]], batch: int, warmup_s: float, seconds: float, settings: dict) -> dict:
    """Run every worker (one request per call) back to back in its own thread."""
    spans: list[list[tuple[int, int]]] = [[] for _ in workers]
    t_warm = time.perf_counter_ns() + int(warmup_s * 1e9)
    deadline = t_warm + int(seconds * 1e9)
    errors: list[BaseException] = []

    def loop(i: int) -> None:
        try:
            counted = 0
            while time.perf_counter_ns() < deadline or counted < MIN_REQUESTS_PER_STREAM:
                s = time.perf_counter_ns()
                workers[i]()
                spans[i].append((s, time.perf_counter_ns()))
                counted += s >= t_warm
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(e)

    threads = [threading.Thread(target=loop, args=(i,), name=f"stream-{i}") for i in range(len(workers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return window_stats([sp for per in spans for sp in per], t_warm, batch, len(workers), settings)
