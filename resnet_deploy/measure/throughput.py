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

The protocol: every stream runs requests back to back. The warm-up lasts at least `warmup_s` and
then until calls are steady (`Warmup`: the newer half of the last completions is no faster than
the older half, within STEADY_RATIO),
so a first call that outlasts `warmup_s` (Keras tracing its graph, a runtime's lazy init) is
never counted or waited on inside the window. Requests that start before the warm-up ends are not
counted; streams stop starting requests `seconds` after it ends (and once each has done
MIN_REQUESTS_PER_STREAM). Throughput = inferences (requests x batch) of the counted requests /
the time from the end of warm-up to the last counted completion; latency percentiles are those of
the counted requests under that load. The result records how long the warm-up took and whether
calls became steady.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any, Callable

import numpy as np

MIN_REQUESTS_PER_STREAM = 4
STEADY_CALLS = 4  # per stream and half: the last 2 x 4 completions of each stream are compared
# steady: the newer half's median call time is no more than 25% below the older half's (still
# speeding up beyond that: caches, lazy init, JIT); medians, so one slow first call or scheduler
# jitter does not decide it
STEADY_RATIO = 1.25
MAX_WARMUP = (10.0, 30.0)  # give up waiting for steady calls after max(10 x warmup_s, 30 s): recorded


class Warmup:
    """The end of the warm-up, decided from completions (thread-safe): at least `warmup_s` after
    the start, and the last call times steady (STEADY_RATIO); or the cap, recorded."""

    def __init__(self, warmup_s: float, streams: int) -> None:
        self.t0 = time.perf_counter_ns()
        self.min_end = self.t0 + int(warmup_s * 1e9)
        self.cap = self.t0 + int(max(MAX_WARMUP[0] * warmup_s, MAX_WARMUP[1]) * 1e9)
        self.recent: deque[int] = deque(maxlen=2 * STEADY_CALLS * max(1, streams))
        self.calls = 0
        self.end: int | None = None  # ns: requests starting at or after it are counted
        self.steady = False
        self._lock = threading.Lock()

    def completed(self, start: int, end: int) -> None:
        """One request finished; may end the warm-up."""
        with self._lock:
            if self.end is not None:
                return
            self.calls += 1
            self.recent.append(end - start)
            self.steady = end >= self.min_end and self._steady()
            if self.steady or end >= self.cap:
                self.end = end

    def _steady(self) -> bool:
        if len(self.recent) < (self.recent.maxlen or 0):
            return False
        times = list(self.recent)
        half = len(times) // 2
        return float(np.median(times[half:])) * STEADY_RATIO >= float(np.median(times[:half]))

    def record(self) -> dict[str, Any]:
        """What the result says of the warm-up."""
        took = ((self.end or time.perf_counter_ns()) - self.t0) / 1e9
        return {"warmup_s": round(took, 3), "warmup_calls": self.calls, "steady": self.steady}


def window_stats(spans: list[tuple[int, int]], warm: Warmup, batch: int, streams: int, settings: dict) -> dict:
    """Throughput and latency under load from (start_ns, end_ns) of every request."""
    from resnet_deploy.portable.protocol import peak_rss_mb

    if warm.end is None:
        raise RuntimeError("the warm-up never ended; raise --seconds")
    t_warm = warm.end
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
        **warm.record(),
    }


def drive(workers: list[Callable[[], Any]], batch: int, warmup_s: float, seconds: float, settings: dict) -> dict:
    """Run every worker (one request per call) back to back in its own thread."""
    spans: list[list[tuple[int, int]]] = [[] for _ in workers]
    warm = Warmup(warmup_s, len(workers))
    errors: list[BaseException] = []

    def loop(i: int) -> None:
        try:
            counted = 0
            while (
                warm.end is None
                or time.perf_counter_ns() < warm.end + seconds * 1e9
                or counted < MIN_REQUESTS_PER_STREAM
            ):
                s = time.perf_counter_ns()
                workers[i]()
                e = time.perf_counter_ns()
                spans[i].append((s, e))
                warm.completed(s, e)
                counted += warm.end is not None and s >= warm.end
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(e)

    threads = [threading.Thread(target=loop, args=(i,), name=f"stream-{i}") for i in range(len(workers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return window_stats([sp for per in spans for sp in per], warm, batch, len(workers), settings)
