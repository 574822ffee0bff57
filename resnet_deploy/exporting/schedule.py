"""The export schedule: a target's TensorFlow-free tail (ONNX's int8 quantization) runs in a
worker process while the next target exports here, so that both cores work.

Why a process, not a thread: ORT's quantizer, NNCF and tf2onnx are Python and would take turns
on one GIL, and two of our guards are process-wide: captured_output() redirects fds 1 and 2, and
redirect_tempdir() sets tempfile.tempdir, so a thread's temporary models could land in another
target's staging folder. The worker is spawned, not forked (TensorFlow's threads are running),
and imports no TensorFlow.

Why only "light" targets run beside it (peak RSS, ResNet-50 @224, 200 samples, from
`python benchmarks/export_speed.py`, RESULTS-export_speed.md names the CPU): this process with
TensorFlow, the model and the calibration set is ~0.95 GB; the TFLite export peaks at 2.45 GB
(`export --target all`'s max RSS), so it does not run while the worker (ORT quantization:
0.93 GB) does, or the 3 GB budget of an export is gone (tf2onnx, 2.0 GB, comes before any tail:
it makes the ONNX model); OpenVINO's export with NNCF (convert_model + NNCF) peaks at ~1.5 GB
and does. Since OpenVINO int8 takes the
ONNX int8 model by default (targets/openvino/from_onnx.py), it waits for the tail instead, and the
worker runs only when OpenVINO quantizes with NNCF.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from resnet_deploy.errors import DeployError, ExportError, first_line

ENV = "RESNET_DEPLOY_EXPORT_WORKER"  # "0": every tail runs in the exporting process (the escape hatch)

# A tail in the worker runs on one thread: the export beside it keeps the other core(s). Measured
# (ResNet-50 int8, export --target all, 2 vCPUs AMD EPYC Zen 3, alternating): 92.7 / 92.3 s with
# one thread, 98.5 / 100.2 s with two.
WORKER_THREADS = 1
# The worker yields the cores to the export beside it (nice 10): that export (OpenVINO's NNCF) is
# the longer one, and the worker takes the cycles it leaves (its Python, its single-threaded
# steps). Measured (same command, 4 alternating pairs, 2 vCPUs AMD EPYC Zen 3): nice 0 94.7 / 91.7
# / 90.7 / 97.6 s, nice 10 89.2 / 90.5 / 90.1 / 92.8 s; the OpenVINO step 45-47 -> 39-42 s, waiting
# for the worker 0 -> 2-6 s.
WORKER_NICE = 10


def plan(targets: list[Any], config: Any) -> tuple[list[Any], bool]:
    """The order to export in, and whether to use a worker: targets with a tail first (ONNX int8,
    whose ranges and model later targets can take: Target.takes), then the light ones that take
    nothing from it (they run beside the tail), then the rest; a worker when a tail has a light
    target to run beside. Without a tail, the order given."""
    tails = [t for t in targets if t.has_tail(config)]
    if not tails:
        return list(targets), False
    names = [t.name for t in targets]
    light = [t for t in targets if t not in tails and beside(t, config, names)]
    order = tails + light + [t for t in targets if t not in tails and t not in light]
    return order, bool(light) and os.environ.get(ENV, "1") != "0"


def beside(target: Any, config: Any, names: list[str]) -> bool:
    """Whether `target` may export while a tail runs in the worker: light, no tail of its own, and
    taking nothing an earlier target's tail makes."""
    return target.light and not target.has_tail(config) and not target.takes(config, names)


def _die_with_parent() -> None:
    """Linux: the kernel kills this process when the exporting process dies (kill -9 included),
    so no orphan goes on writing into a staging folder that the next run cleans away."""
    import ctypes
    import multiprocessing
    import signal

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:
        os._exit(1)  # the parent died before the line above took effect


def _child(conn: Any, fn: Callable[..., dict], kwargs: dict, name: str, precision: str, out_dir: str) -> None:
    """The worker process: the tail under the same guard as an export, its result or its one
    error (a DeployError or an OSError naming the file, both picklable) sent back."""
    from resnet_deploy.progress import Progress
    from resnet_deploy.backend.target import converting

    _die_with_parent()
    os.nice(WORKER_NICE)
    try:
        with converting(name, precision, Path(out_dir)):
            reply: tuple = ("ok", fn(progress=Progress(), threads=WORKER_THREADS, **kwargs))
    except (DeployError, OSError) as e:
        reply = ("error", e)
    except BaseException as e:  # noqa: BLE001 - KeyboardInterrupt too: the exporting process decides
        reply = ("error", ExportError(f"{name} {precision} export failed: {type(e).__name__}: {first_line(e)}"))
    conn.send(reply)
    conn.close()


class Worker:
    """Runs one Tail at a time in a fresh spawned process. Leaving the `with` block stops a tail
    still running (an interrupted export), so no process outlives the export."""

    def __init__(self) -> None:
        self._proc: Any = None
        self._conn: Any = None
        self._label = ""

    @property
    def busy(self) -> bool:
        return self._proc is not None

    def start(self, tail: Any, name: str, precision: str, out_dir: Path) -> None:
        import multiprocessing

        if self.busy:
            raise RuntimeError("the worker runs one tail at a time: take result() first")
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(
            target=_child,
            args=(child, tail.fn, tail.kwargs, name, precision, str(out_dir)),
            name=f"resnet-deploy {name} {precision}",
            daemon=True,
        )
        self._proc.start()
        child.close()
        self._label = f"{name} {precision}"

    def result(self) -> dict:
        """Wait for the running tail: its dict, or its error raised here."""
        proc, conn, self._proc, self._conn = self._proc, self._conn, None, None
        try:
            status, value = conn.recv()
        except (EOFError, OSError):
            proc.join()
            raise ExportError(
                f"{self._label} export failed: its worker process ended without a result "
                f"(exit code {proc.exitcode}: killed, or out of memory?); run again, or export "
                "this target on its own"
            ) from None
        finally:
            conn.close()
        proc.join()
        if status == "error":
            raise value
        return value

    def close(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.join()
            self._conn.close()
            self._proc = self._conn = None

    def __enter__(self) -> "Worker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
