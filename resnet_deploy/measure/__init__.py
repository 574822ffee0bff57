"""How fast: one latency protocol for every runtime, throughput with every core busy, per-op
profiles mapped to Keras layers, each measurement in a fresh process."""

from resnet_deploy.lazy import public

_WHERE = {
    "run_bench": "bench",
    "Protocol": "latency",
    "measure": "latency",
}
__all__ = list(_WHERE)
__getattr__, __dir__ = public(__name__, _WHERE)
