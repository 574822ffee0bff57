"""Giving memory back between export steps.

A converter's garbage (TensorFlow graphs, protobuf arenas, numpy copies of the weights) is freed by
Python but stays in the C allocator's arenas, so the next target's peak lands on top of the last
one's: measured on ResNet-50 @224, `export --target all` peaked at 3.3 GB with the ONNX step alone
at 2.9 GB. Between targets, collect cycles and ask glibc to return free pages to the system.

Each of those collections walked every object the process tracks: ~430,000 once TensorFlow, Keras,
the converters and ResNet-50 are loaded, 0.32-0.35 s per collection (AMD EPYC Zen 3), ten of them
in `export --target all`, besides the collector's own full collections while the converters make
millions of objects. Almost all of them live for the whole export. `long_lived()` moves the
objects alive when an export starts out of the collector's sight (gc.freeze, CPython's switch for
exactly this) until it ends."""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import gc
from typing import Iterator


def release() -> None:
    """Collect garbage and return the allocator's free memory to the OS (glibc; a no-op elsewhere)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


@contextlib.contextmanager
def long_lived() -> Iterator[None]:
    """For the block, the collector skips every object alive when it starts (after one last
    collection); they are its again when the block ends. A cycle among those objects that dies
    inside the block is freed only then. Nested or beside another gc.freeze: steps aside."""
    if gc.get_freeze_count():
        yield
        return
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No automatic collections in the block (importing TensorFlow and Keras: ~1,000 of them, 1.4 s
    of a 7.9 s import, AMD EPYC Zen 3, for 0.5 s of garbage cycles collected once afterwards)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def quick_exit() -> None:
    """When the interpreter exits, let its last collections skip every object: Python's
    finalisation collects several times over all of them, 2.4-2.5 s once TensorFlow and Keras are
    loaded (0.2 s frozen; AMD EPYC Zen 3), after a command has printed its last line. The memory
    goes back to the OS with the process; atexit handlers (temporary folders, multiprocessing's
    children), stream flushes and refcount frees still run; only unreachable cycles are left
    unfinalised. Registered once however often it is called."""
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)
