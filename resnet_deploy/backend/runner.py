"""Runner base (Polygraphy's split: public activate/infer/deactivate check state and inputs,
subclasses override *_impl) and KerasRunner, the reference."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from resnet_deploy.errors import InputError


class ProfilingUnsupported(Exception):
    """This runtime cannot report per-op timings; the message says why."""


class Runner:
    """Executes one model on float32 NHWC batches and returns float32 outputs.

    Callers always pass and receive floats; a runner for a quantized-I/O model quantizes and
    dequantizes with the model's own parameters.
    """

    name = "runner"

    def __init__(
        self, model_path: Path | str | None = None, threads: int | None = None, precision: str | None = None
    ) -> None:
        self.model_path = Path(model_path) if model_path is not None else None
        self.threads = threads  # None: the runtime's default (usually all cores)
        self.precision = getattr(precision, "value", precision)  # the artifact's precision, for reports
        self.is_active = False
        self.input_shape: tuple[int | None, ...] = ()

    # --- lifecycle -------------------------------------------------------------------------
    def activate(self) -> "Runner":
        if self.is_active:
            raise RuntimeError(f"{self.name} is already active")
        self.activate_impl()
        self.is_active = True
        return self

    def deactivate(self) -> None:
        if self.is_active:
            self.deactivate_impl()
            self.is_active = False

    def __enter__(self) -> "Runner":
        return self.activate()

    def __exit__(self, *exc: object) -> None:
        self.deactivate()

    # --- inference ---------------------------------------------------------------------------
    @property
    def max_batch(self) -> int | None:
        """Largest batch one infer() call takes (None: any)."""
        return self.input_shape[0] if self.input_shape else None

    def check_input(self, x: np.ndarray) -> np.ndarray:
        if not self.is_active:
            raise RuntimeError(f"{self.name}: call activate() (or use `with`) before infer()")
        x = np.asarray(x)
        if x.dtype != np.float32:
            raise InputError(
                f"{self.name}: input dtype {x.dtype} is not float32; pass preprocessed float32 NHWC arrays."
            )
        expected = self.input_shape
        if x.ndim != len(expected) or any(e is not None and e != a for e, a in zip(expected[1:], x.shape[1:])):
            raise InputError(f"{self.name}: input shape {x.shape} does not match the model's {tuple(expected)}.")
        if self.max_batch is not None and x.shape[0] != self.max_batch:
            raise InputError(f"{self.name}: batch {x.shape[0]} but the model takes batch {self.max_batch}.")
        return np.ascontiguousarray(x)

    def infer(self, x: np.ndarray) -> np.ndarray:
        """One call of the runtime on one batch."""
        return self.infer_impl(self.check_input(x))

    def prepare(self, x: np.ndarray) -> np.ndarray:
        """Checked input in the form the runtime call takes (e.g. already int8-quantized).

        Latency is timed around run_raw(prepare(x)) so that Python-side input conversion is
        not counted as runtime time."""
        return self.check_input(x)

    def run_raw(self, prepared: np.ndarray) -> Any:
        """The runtime's own call, on prepared input: what the latency protocol times."""
        return self.infer_impl(prepared)

    def predict(self, xs: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """Run any number of samples, in batches the model accepts, in order."""
        step = self.max_batch or batch_size
        outs = [self.infer(xs[i : i + step]) for i in range(0, len(xs), step)]
        return np.concatenate(outs, axis=0)

    def serve(self, xs: np.ndarray) -> np.ndarray:
        """Outputs for many samples, in order, computed the way the runtime serves at throughput
        (the configuration of `throughput()`: every core busy): what parity runs. The default is
        predict(); runtimes with their own way of serving concurrent requests override it."""
        return self.predict(xs)

    @property
    def streams(self) -> int:
        """Requests in flight when serving: the thread budget, one thread each."""
        import os

        return self.threads or os.cpu_count() or 1

    def info(self) -> dict[str, Any]:
        """What actually ran: runtime, version, execution precision, threads."""
        return {"runner": self.name}

    def throughput(self, x: np.ndarray, warmup_s: float, seconds: float, streams: int) -> dict[str, Any]:
        """Requests in flight on every core (throughput.py); this default is one stream of
        back-to-back calls with the runner's own threads (the Keras baseline). Runtimes override it
        with their own way of serving concurrent requests."""
        from resnet_deploy.measure.throughput import drive

        prepared = self.prepare(x)
        return drive(
            [lambda: self.run_raw(prepared)],
            int(x.shape[0]),
            warmup_s,
            seconds,
            {"how": "one stream, back-to-back calls", "threads": self.threads or "default"},
        )

    def profile(self, x: np.ndarray, warmup: int, runs: int) -> list[dict[str, Any]]:
        """Per executed op: name, type, kind (profiling.KINDS) and mean ms per run, from the
        runtime's own profiler. Runtimes without one raise ProfilingUnsupported saying so."""
        raise ProfilingUnsupported(f"{self.name} has no per-op profiler here")

    def executed_ops(self, x: np.ndarray) -> list[dict[str, Any]]:
        """The ops the runtime really executes (after its fusions), with their kind."""
        return [{k: v for k, v in op.items() if k != "ms"} for op in self.profile(x, 1, 1)]

    # --- for subclasses ----------------------------------------------------------------------
    def require_single_io(self, n_inputs: int, n_outputs: int) -> None:
        """Our runners (and the parity harness) handle one input and one output."""
        if n_inputs != 1 or n_outputs != 1:
            raise InputError(
                f"{str(self.model_path)!r} has {n_inputs} inputs and {n_outputs} outputs; only 1 and 1 are supported."
            )

    def activate_impl(self) -> None:
        raise NotImplementedError

    def deactivate_impl(self) -> None:
        pass

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError


def set_tf_threads(threads: int) -> bool:
    """Size TensorFlow's thread pools. Possible only before TF runs its first op (a model build
    counts); returns False if it was too late. KerasRunner.info() reports what TF really uses."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        return True
    except RuntimeError:
        return False


class KerasRunner(Runner):
    """The reference: the Keras model itself, in inference mode, fp32."""

    name = "keras"

    def __init__(self, model: Any, threads: int | None = None) -> None:
        super().__init__(threads=threads, precision="fp32")
        self.model = model
        self.input_shape = (None, *tuple(model.input_shape[1:]))
        self._fn: Any = None

    def activate_impl(self) -> None:
        import tensorflow as tf

        if self.threads:
            set_tf_threads(self.threads)
        self._fn = tf.function(lambda x: self.model(x, training=False), reduce_retracing=True)

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self._fn(x), dtype=np.float32)

    def info(self) -> dict[str, Any]:
        import keras
        import tensorflow as tf

        return {
            "runner": self.name,
            "keras": keras.__version__,
            "tensorflow": tf.__version__,
            "precision": "fp32",
            "threads": tf.config.threading.get_intra_op_parallelism_threads() or "default (all cores)",
        }
