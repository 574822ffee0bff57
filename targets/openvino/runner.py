"""OpenVINO's runner: compiled with an explicit inference precision that is read back; latency,
throughput (THROUGHPUT hint, AsyncInferQueue), serving and its performance counters."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from resnet_deploy.backend.runner import Runner
from resnet_deploy.config import Precision
from resnet_deploy import ov_telemetry
from resnet_deploy.errors import BackendUnavailable, InputError, PrecisionMismatch, first_line
from resnet_deploy.versions import versions


def _ov():
    ov_telemetry.silence()  # before the import: importing openvino sends an event too
    try:
        import openvino as ov
    except ImportError as e:
        raise BackendUnavailable("openvino is not installed; pip install openvino.") from e
    return ov


OV_CONVERT_OPS = frozenset(
    {
        "Reorder",
        "Transpose",
        "Reshape",
        "FakeQuantize",
        "Convert",
        "Squeeze",
        "Unsqueeze",
        "Parameter",
        "Result",
        "Input",
        "Output",
        "Constant",
    }
)


def ov_kind(node_type: str, exec_type: str) -> str:
    """int8 arithmetic (the plugin's exec type says I8/U8), float arithmetic, or data movement."""
    if node_type in OV_CONVERT_OPS:
        return "convert"
    return "int8" if re.search(r"(?i)(^|_)[iu]8($|_)", exec_type) else "float"


def _callbacks_done(spans: list, total: int) -> None:
    """Wait until every request's Python callback has run, then let the callback threads leave
    their wrappers, before the queue and compiled model are destroyed: with OpenVINO 2026.4 the
    destructor joins its stream threads holding the GIL, and a thread still waiting for the GIL in
    a callback wrapper deadlocks it (seen under load: main thread in ~CPUStreamsExecutor, a stream
    thread waiting for the GIL; fixed upstream in openvinotoolkit/openvino#37073)."""
    import time

    limit = time.monotonic() + 5.0
    while len(spans) < total and time.monotonic() < limit:
        time.sleep(0.001)
    time.sleep(0.02)  # releases the GIL: a wrapper still holding a reference finishes


class OpenVINORunner(Runner):
    """Compiles for CPU with an explicit INFERENCE_PRECISION_HINT and reads back what it got.

    inference_precision: "f32" (default for every artifact), "bf16", "f16", or None to let the
    plugin choose (bf16 on AVX512-BF16/AMX CPUs). If a precision was asked for and the compiled
    model reports another, activation fails: nothing runs in a precision nobody chose.
    """

    name = "openvino"
    _serving: Any = None  # the THROUGHPUT-compiled AsyncInferQueue once serve() runs

    def __init__(
        self,
        model_path: Path,
        threads: int | None = None,
        precision: Precision | str | None = None,
        inference_precision: str | None = "f32",
    ) -> None:
        super().__init__(model_path, threads, precision)
        self.inference_precision = inference_precision
        self._compiled: Any = None
        self.actual: dict[str, Any] = {}

    def activate_impl(self) -> None:
        if self.inference_precision == "bf16":
            from resnet_deploy.portable.device import facts

            if facts().get("bf16") is False:
                raise BackendUnavailable(
                    "bf16 needs a CPU with AVX512-BF16 or AMX-BF16 (cpu flag avx512_bf16 or amx_bf16); this CPU "
                    "has neither: run the fp32 or int8 artifact here."
                )
        ov = _ov()
        core = ov.Core()
        try:
            model = core.read_model(str(self.model_path))
        except Exception as e:  # noqa: BLE001
            raise InputError(
                f"{str(self.model_path)!r} is not a readable OpenVINO IR ({first_line(e, 200)}); re-export it."
            ) from e
        self.require_single_io(len(model.inputs), len(model.outputs))
        self._core, self._model = core, model
        self._compiled_batch: int | None = None
        shape = [d.get_length() if d.is_static else None for d in model.inputs[0].get_partial_shape()]
        self.input_shape = (None, *shape[1:])
        self._compile(shape[0] or 1)

    def _compile(self, batch: int) -> None:
        """Compile for a static batch: measured on ResNet-50 int8, a dynamic batch dim costs
        ~0.5-1 ms per call (5-10%). A different batch recompiles once."""
        self._compiled, self.actual = self._compile_checked(batch)
        self._request = self._compiled.create_infer_request()
        self._compiled_batch = batch

    def _compile_checked(self, batch: int, performance_hint: str = "LATENCY", perf_count: bool = False) -> tuple:
        """Compile, and refuse a compiled model that runs in another precision than asked for."""
        from resnet_deploy.portable.runtimes import ov_compile, precision_mismatch

        compiled, actual = ov_compile(
            self._core, self._model, batch, self.threads, self.inference_precision, performance_hint, perf_count
        )
        got = actual["inference_precision"]
        if self.inference_precision and got != self.inference_precision:
            raise PrecisionMismatch(
                str(precision_mismatch(Path(str(self.model_path)).name, got, self.inference_precision))
            )
        return compiled, actual

    def deactivate_impl(self) -> None:
        self._request = None
        self._compiled = None
        self._serving = None

    def serve(self, xs: np.ndarray) -> np.ndarray:
        """As throughput(): compiled with PERFORMANCE_HINT=THROUGHPUT (its precision read back and
        checked), an AsyncInferQueue of OPTIMAL_NUMBER_OF_INFER_REQUESTS, one sample a request."""
        import openvino as ov

        self.check_input(xs[:1])
        if self._serving is None:
            compiled, _ = self._compile_checked(1, "THROUGHPUT")
            self._serving = ov.AsyncInferQueue(compiled, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        outs: list[Any] = [None] * len(xs)
        finished: list[int] = []

        def done(request: Any, i: int) -> None:
            outs[i] = np.array(request.get_output_tensor(0).data, dtype=np.float32, copy=True)
            finished.append(i)

        self._serving.set_callback(done)
        for i in range(len(xs)):
            self._serving.start_async({0: xs[i : i + 1]}, userdata=i)
        self._serving.wait_all()
        _callbacks_done(finished, len(xs))  # every output is in, and no callback thread holds the queue
        return np.concatenate(outs)

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        if x.shape[0] != self._compiled_batch:
            self._compile(x.shape[0])
        return np.array(self._request.infer({0: x})[0], dtype=np.float32, copy=True)

    def prepare(self, x: np.ndarray) -> Any:
        """Bind the input to the request once (zero-copy), as benchmark_app does."""
        import openvino as ov

        x = self.check_input(x)
        if x.shape[0] != self._compiled_batch:
            self._compile(x.shape[0])
        self._bound = x  # keep the array alive while the request shares its memory
        self._request.set_input_tensor(ov.Tensor(x, shared_memory=True))
        return x

    def run_raw(self, prepared: Any) -> Any:
        self._request.infer()  # the sync call on the bound input: no per-call Python conversions

    def throughput(self, x: np.ndarray, warmup_s: float, seconds: float, streams: int) -> dict[str, Any]:
        """PERFORMANCE_HINT=THROUGHPUT (the plugin picks the streams) and an AsyncInferQueue of
        OPTIMAL_NUMBER_OF_INFER_REQUESTS, as benchmark_app -hint throughput. `streams` is not
        used: the thread budget is self.threads, how to split it is the plugin's choice."""
        import time

        import openvino as ov

        from resnet_deploy.measure.throughput import MIN_REQUESTS_PER_STREAM, Warmup, window_stats

        x = self.check_input(x)
        compiled, actual = self._compile_checked(int(x.shape[0]), "THROUGHPUT")
        self._compiled_batch = None  # the latency request is compiled for another config now
        nireq = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        queue, spans, warm = ov.AsyncInferQueue(compiled, nireq), [], Warmup(warmup_s, nireq)

        def done(request: Any, started: int) -> None:
            span = (started, time.perf_counter_ns())
            spans.append(span)
            warm.completed(*span)

        queue.set_callback(done)
        tensor = ov.Tensor(x, shared_memory=True)
        for i in range(nireq):
            queue[i].set_input_tensor(tensor)
        counted, total = 0, 0
        while (
            warm.end is None
            or time.perf_counter_ns() < warm.end + seconds * 1e9
            or counted < MIN_REQUESTS_PER_STREAM * nireq
        ):
            queue.get_idle_request_id()  # wait for a free request: queueing is not the request's latency
            started = time.perf_counter_ns()
            queue.start_async(userdata=started)
            counted, total = counted + (warm.end is not None and started >= warm.end), total + 1
        queue.wait_all()
        _callbacks_done(spans, total)
        return window_stats(
            spans,
            warm,
            int(x.shape[0]),
            actual["streams"],
            {
                "how": f"PERFORMANCE_HINT=THROUGHPUT, AsyncInferQueue of {nireq} requests",
                "streams": actual["streams"],
                "infer_requests": nireq,
                "threads": actual["threads"],
                "inference_precision": actual["inference_precision"],
            },
        )

    def profile(self, x: np.ndarray, warmup: int, runs: int) -> list[dict[str, Any]]:
        """OpenVINO's performance counters (PERF_COUNT) of each run after the warm-up, summed per
        executed op (the plugin's own op names and exec types), ms per run."""
        x = self.check_input(x)
        compiled, _ = self._compile_checked(int(x.shape[0]), perf_count=True)
        self._compiled_batch = None  # the latency request belongs to another compilation now
        request = compiled.create_infer_request()
        ops: dict[str, Any] = {}
        for i in range(warmup + runs):
            request.infer({0: x})
            if i < warmup:
                continue
            for p in request.get_profiling_info():
                if p.status.name == "EXECUTED":
                    op = ops.setdefault(
                        p.node_name,
                        {
                            "name": p.node_name,
                            "type": p.node_type,
                            "kind": ov_kind(p.node_type, p.exec_type),
                            "ms": 0.0,
                            "exec_type": p.exec_type,
                        },
                    )
                    op["ms"] += p.real_time.total_seconds() * 1000.0 / runs
        return list(ops.values())

    def info(self) -> dict[str, Any]:
        return {
            "runner": self.name,
            "precision": self.precision,
            "requested_precision": self.inference_precision,
            **self.actual,
            **versions("openvino"),
        }
