"""Option values checked before any work: each check names the option and the fix in one line."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from resnet_deploy.errors import InputError


def positive_int(value: Any, what: str) -> int:
    """An int >= 1, or an InputError naming the option."""
    try:
        v = int(value)
    except (TypeError, ValueError):
        raise InputError(f"{what} {value!r} is not a whole number; pass an integer >= 1.") from None
    if isinstance(value, bool) or v != value or v < 1:
        raise InputError(f"{what} {value!r} must be a whole number >= 1.")
    return v


def thread_count(value: Any, what: str = "--threads") -> int:
    """Threads for a runtime on this machine: a whole number >= 1 and no more than this machine
    can use (portable.limits), else an InputError naming the option."""
    from resnet_deploy.portable.limits import thread_problem

    v = positive_int(value, what)
    why = thread_problem(v, what)
    if why:
        raise InputError(f"{why}.")
    return v


def writable(path: Any, what: str, folder: bool) -> Path:
    """A folder (or a file) we will write, checked before any work: not a file where a folder is
    needed (or the reverse), under a folder this process may write. Returns it as a Path."""
    import os

    p = Path(path)
    if p.exists() and p.is_dir() != folder:
        raise InputError(
            f"{what} {str(p)!r} is a {'file' if folder else 'folder'}; pass a {'folder' if folder else 'file path'}."
        )
    anc = p if p.is_dir() else p.parent
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if not anc.is_dir():
        raise InputError(
            f"{what} {str(p)!r}: {str(anc)!r} is a file, not a folder; pass a path whose folders are folders."
        )
    if not os.access(anc, os.W_OK | os.X_OK):
        raise InputError(f"{what} {str(p)!r}: {str(anc)!r} is not writable; pass a writable location.")
    return p


def readable_file(path: Any, what: str) -> Path:
    """An existing regular file we may read, else one line naming it."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{what} {str(p)!r} is not a file; pass an existing file.")
    try:
        with open(p, "rb"):
            pass
    except OSError as e:
        raise InputError(f"{what} {str(p)!r} cannot be read ({e.strerror}); check its permissions.") from None
    return p


def positive_float(value: Any, what: str) -> float:
    """A finite float > 0, or an InputError naming the option."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{what} {value!r} is not a number; pass a number > 0.") from None
    if not (v > 0 and math.isfinite(v)):
        raise InputError(f"{what} {value!r} must be a finite number > 0.")
    return v
