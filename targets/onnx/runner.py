"""ONNX Runtime's runner: latency, throughput, serving and its per-op profiler."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from resnet_deploy.backend.runner import Runner
from resnet_deploy.errors import BackendUnavailable, InputError, first_line
from resnet_deploy.versions import versions


ORT_INT8_OPS = ("QLinear", "QGemm", "MatMulInteger", "ConvInteger", "DynamicQuantize", "QAttention")
ORT_CONVERT_OPS = frozenset(
    {
        "QuantizeLinear",
        "DequantizeLinear",
        "Transpose",
        "Reshape",
        "Squeeze",
        "Unsqueeze",
        "Flatten",
        "Identity",
        "Cast",
        "ReorderInput",
        "ReorderOutput",
    }
)


def ort_kind(op_type: str) -> str:
    """int8 arithmetic, float arithmetic, or data movement/conversion (profiling.KINDS)."""
    if op_type.startswith(ORT_INT8_OPS):
        return "int8"
    return "convert" if op_type in ORT_CONVERT_OPS else "float"


class OrtRunner(Runner):
    """ONNX Runtime on the CPU execution provider, full graph optimisation, fixed thread count."""

    name = "onnx"
    _pool: Any = None  # (single-threaded session, thread pool) once serve() runs

    def activate_impl(self) -> None:
        try:
            import onnxruntime  # noqa: F401
        except ImportError as e:
            raise BackendUnavailable("onnxruntime is not installed; pip install onnxruntime.") from e
        from resnet_deploy.portable.runtimes import ort_session

        try:
            self._sess = ort_session(self.model_path, self.threads)
        except Exception as e:  # noqa: BLE001 - ORT raises its own exception types
            raise InputError(
                f"{str(self.model_path)!r} is not a loadable ONNX model ({first_line(e, 200)}); re-export it."
            ) from e
        ins, outs = self._sess.get_inputs(), self._sess.get_outputs()
        self.require_single_io(len(ins), len(outs))
        self._in_name, self._out_name = ins[0].name, outs[0].name
        self.input_shape = tuple(d if isinstance(d, int) else None for d in ins[0].shape)

    def deactivate_impl(self) -> None:
        self._sess = None
        if self._pool is not None:
            self._pool[1].shutdown()
        self._pool = None

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        return self._sess.run([self._out_name], {self._in_name: x})[0]

    def serve(self, xs: np.ndarray) -> np.ndarray:
        """As throughput(): one single-threaded session, `streams` run() calls at once, one sample each."""
        from concurrent.futures import ThreadPoolExecutor

        from resnet_deploy.portable.runtimes import ort_session

        self.check_input(xs[:1])
        if self._pool is None:
            self._pool = (ort_session(self.model_path, 1), ThreadPoolExecutor(self.streams))
        sess, pool = self._pool
        outs = pool.map(lambda i: sess.run([self._out_name], {self._in_name: xs[i : i + 1]})[0], range(len(xs)))
        return np.concatenate(list(outs))

    def throughput(self, x: np.ndarray, warmup_s: float, seconds: float, streams: int) -> dict[str, Any]:
        """One session (run() is thread-safe), `streams` Python threads calling it at once, one
        intra-op thread each (throughput.py says why)."""
        from resnet_deploy.portable.runtimes import ort_session
        from resnet_deploy.measure.throughput import drive

        x = self.check_input(x)
        sess = ort_session(self.model_path, 1)
        feed, out = {self._in_name: x}, [self._out_name]
        return drive(
            [lambda: sess.run(out, feed)] * streams,
            int(x.shape[0]),
            warmup_s,
            seconds,
            {"how": f"one session, {streams} concurrent run() calls", "intra_op_threads_per_stream": 1},
        )

    def profile(self, x: np.ndarray, warmup: int, runs: int) -> list[dict[str, Any]]:
        """ORT's profiler (a session with enable_profiling): node events of the runs after the
        warm-up, summed per executed node, ms per run."""
        import tempfile

        from resnet_deploy.portable.runtimes import ort_session

        x = self.check_input(x)
        with tempfile.TemporaryDirectory(prefix="rd-ortprof-") as tmp:
            sess = ort_session(self.model_path, self.threads, profile_prefix=Path(tmp) / "ort")
            for _ in range(warmup + runs):
                sess.run([self._out_name], {self._in_name: x})
            events = json.loads(Path(sess.end_profiling()).read_text())
        starts = sorted(e["ts"] for e in events if e.get("cat") == "Session" and e.get("name") == "model_run")
        since = starts[warmup] if len(starts) > warmup else 0
        ops: dict[str, dict] = {}
        for e in events:
            if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time") and e["ts"] >= since:
                name, kind = e["name"][: -len("_kernel_time")], e.get("args", {}).get("op_name", "?")
                op = ops.setdefault(name, {"name": name, "type": kind, "kind": ort_kind(kind), "ms": 0.0})
                op["ms"] += e["dur"] / 1000.0 / runs
        return list(ops.values())

    def info(self) -> dict[str, Any]:
        sess = getattr(self, "_sess", None)
        used = sess.get_session_options().intra_op_num_threads if sess else None
        return {
            "runner": self.name,
            "threads": used or "default (all cores)",
            "provider": "CPUExecutionProvider",
            "precision": self.precision,
            **versions("onnxruntime"),
        }
