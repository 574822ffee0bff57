"""Atomic writes: every file or folder we publish appears whole or not at all.

Files are written to a temporary name in the same folder and renamed; folders are built in a
staging folder beside their final place and swapped in, the old one removed only after. Staging
and old folders carry their process id (".NAME.partial-PID-xxxx"): one left by a process that no
longer runs (killed with -9, a power cut) is removed by the next staging in that folder; a live
process's is never touched. Converters' temporary files go inside the staging folder
(redirect_tempdir), so a killed run leaves nothing in TMPDIR either.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

from resnet_deploy.portable.checks import no_nan


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write to a temp file beside `path`, then rename over it."""
    with atomic_file(path) as f:
        f.write(data)


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[Any]:
    """A binary file to write: a temp file beside `path`, renamed over it when the block ends
    without an error (removed otherwise), so `path` is never half-written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as e:  # name the file asked for, not our hidden temp name
        raise OSError(e.errno, e.strerror, str(path)) from None
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; our files are meant to be read by others
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise OSError(e.errno, e.strerror, str(path)) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_npz_streamed(path: Path, members: dict[str, tuple[tuple, Any, Iterator[Any]]]) -> None:
    """An .npz (numpy.load reads it) whose arrays are written chunk by chunk: members maps a name
    to (shape, dtype, chunks); the chunks, C-ordered, concatenate to the array. Atomic."""
    import zipfile

    import numpy as np

    with atomic_file(path) as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        for name, (shape, dtype, chunks) in members.items():
            with zf.open(f"{name}.npy", "w", force_zip64=True) as f:
                header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False}
                np.lib.format.write_array_header_2_0(f, {**header, "shape": tuple(shape)})
                for chunk in chunks:
                    f.write(np.ascontiguousarray(chunk, dtype=dtype).tobytes())


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode())


def write_json_atomic(path: Path, data: Any) -> None:
    """JSON (indented, one trailing newline, NaN written as null), written atomically."""
    write_text_atomic(path, json.dumps(no_nan(data), indent=2, default=str) + "\n")


_OWNED = re.compile(r"^\.(?P<name>.+)\.(?P<kind>partial|old|work)-(?P<pid>\d+)-")


def owned_prefix(name: str, kind: str) -> str:
    """The name prefix of a hidden folder this process owns beside `name` (kind: partial, old, work)."""
    return f".{name}.{kind}-{os.getpid()}-"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, another user's
    return True


def clean_stale(folder: Path) -> list[Path]:
    """Remove the hidden staging/old/work folders in `folder` whose process is gone; their paths."""
    removed = []
    for entry in folder.iterdir() if folder.is_dir() else []:
        m = _OWNED.match(entry.name)
        if m and int(m["pid"]) != os.getpid() and not pid_alive(int(m["pid"])):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def publish_dir(staging: Path, final: Path, attempts: int = 20) -> None:
    """Swap a finished staging folder into place; an older folder is removed only after. Safe
    when several processes publish the same folder at once: the last one wins, none fails."""
    old = None
    for _ in range(attempts):
        try:
            staging.rename(final)
            break
        except OSError as e:
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                _put_back(old, final)
                raise
        aside = final.with_name(f"{owned_prefix(final.name, 'old')}{time.time_ns()}")
        try:
            final.rename(aside)  # someone else's (or the previous) version: out of the way
        except FileNotFoundError:
            continue  # another process moved it first
        if old is None:
            old = aside
        else:
            shutil.rmtree(aside, ignore_errors=True)
    else:
        raise OSError(errno.EBUSY, "another process keeps publishing the same folder", str(final))
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _put_back(old: Path | None, final: Path) -> None:
    if old is not None and not final.exists():
        with contextlib.suppress(OSError):
            old.rename(final)  # the previous version, back in place


@contextlib.contextmanager
def staging_dir(final: Path) -> Iterator[Path]:
    """A fresh folder beside `final`, removed on exit unless it was published (renamed away);
    stale ones of dead processes in the same folder are removed first."""
    final.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(final.parent)
    staging = Path(tempfile.mkdtemp(prefix=owned_prefix(final.name, "partial"), dir=final.parent))
    try:
        yield staging
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def redirect_tempdir(folder: Path) -> Iterator[Path]:
    """Python's and subprocesses' temporary files go into folder/.tmp while the block runs
    (removed after): the converters' temporary models (ORT's quantizer writes the model out
    again, with its augmented copy) are hundreds of MB that a killed run would otherwise leave
    in TMPDIR."""
    tmp = Path(folder) / ".tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    saved = tempfile.tempdir, os.environ.get("TMPDIR")
    tempfile.tempdir, os.environ["TMPDIR"] = str(tmp), str(tmp)
    try:
        yield tmp
    finally:
        tempfile.tempdir = saved[0]
        if saved[1] is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved[1]
        shutil.rmtree(tmp, ignore_errors=True)


PRIVATE_TMP = "resnet-deploy-"  # + "<pid>-<random>": a CLI process's own TMPDIR inside the system's


def private_tempdir() -> Path:
    """From here on this process's (and its children's) temporary files go into a folder of its
    own inside TMPDIR, removed at exit; a process killed with SIGKILL leaves that one folder,
    which the next run removes (its pid is gone). TensorFlow's autograph writes its generated
    modules to TMPDIR and deletes them only at a clean exit."""
    import atexit

    base = Path(tempfile.gettempdir())
    for old in base.glob(f"{PRIVATE_TMP}*"):
        pid = old.name[len(PRIVATE_TMP) :].split("-", 1)[0]
        if old.is_dir() and pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    mine = Path(tempfile.mkdtemp(prefix=f"{PRIVATE_TMP}{os.getpid()}-", dir=base))
    tempfile.tempdir, os.environ["TMPDIR"] = str(mine), str(mine)
    atexit.register(shutil.rmtree, mine, True)
    return mine
