"""The one latency protocol, the same for every runtime: warm-up of at least `warmup_runs` and
`warmup_s`, then at least `runs` and `seconds`, each call timed with perf_counter_ns around the
runtime's own call (Runner.run_raw) only. The loop itself is resnet_deploy/portable/protocol.py,
which devices run too; the defaults are portable.constants.DEFAULT_PROTOCOL."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from resnet_deploy.errors import InputError
from resnet_deploy.portable.constants import DEFAULT_PROTOCOL
from resnet_deploy.portable.protocol import time_calls

if TYPE_CHECKING:
    from resnet_deploy.backend.runner import Runner


@dataclass(frozen=True)
class Protocol:
    warmup_runs: int = int(DEFAULT_PROTOCOL["warmup_runs"])
    warmup_s: float = DEFAULT_PROTOCOL["warmup_s"]
    runs: int = int(DEFAULT_PROTOCOL["runs"])
    seconds: float = DEFAULT_PROTOCOL["seconds"]
    max_runs: int = int(DEFAULT_PROTOCOL["max_runs"])

    def __post_init__(self) -> None:
        for name in ("warmup_runs", "runs", "max_runs"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"latency protocol {name}={getattr(self, name)} must be >= 1.")
        for name in ("warmup_s", "seconds"):
            v = float(getattr(self, name))
            if not v > 0 or v == float("inf"):
                raise InputError(f"--{name.replace('_', '-')} {v}: pass a number of seconds > 0.")


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
