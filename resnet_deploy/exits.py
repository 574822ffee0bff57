"""The CLI's exit mapping: run a click group and turn every error into one `error:` line on
stderr and an exit code (the codes are portable.constants', shared with the device self-test).
No traceback reaches a user for anything resnet-deploy raises on purpose."""

from __future__ import annotations

import errno
import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from resnet_deploy.errors import DeployError
from resnet_deploy.portable.constants import EXIT_DISK_FULL, EXIT_INPUT

EXIT_INTERRUPTED = 130  # the shell's code for Ctrl-C


def mount_of(path: Path) -> Path | None:
    """The mount point holding `path` (the disk that is full), or None."""
    try:
        p = Path(path).absolute()
        while not p.is_mount() and p != p.parent:  # a missing path is no mount: its parents are asked
            p = p.parent
        return p
    except OSError:
        return None


def os_error_line(e: OSError) -> str:
    """What could not be read or written, why, and what to do."""
    where = f" {e.filename!r}" if e.filename else ""
    if e.errno == errno.ENOSPC:
        disk = mount_of(Path(e.filename)) if e.filename else None
        on = f" (the one mounted at {str(disk)!r})" if disk else ""
        return f"the disk is full{on}: could not write{where}; free space there or pass --out on another disk."
    if e.errno in (errno.EEXIST, errno.ENOTDIR) and e.filename and Path(e.filename).is_file():
        return f"{where.strip()} is a file where a folder is needed; pass a path whose folders are folders."
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"permission denied for{where} ({e.strerror}); pass a writable --out (or fix its permissions)."
    return f"cannot use{where}: {e.strerror or e}; check the path (a folder that is a file, a missing parent...)."


class WatchedStdout:
    """stdout as it is, noting whether anything was written to it."""

    def __init__(self, stream: Any) -> None:
        self.stream, self.written = stream, False

    def write(self, text: str) -> int:
        self.written = self.written or bool(text)
        return self.stream.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def fail(message: str, code: int, json_to: WatchedStdout | None = None) -> NoReturn:
    """One line on stderr, then exit with `code`. Under --json, when the command printed nothing
    yet, stdout gets the error as a JSON object too, so a script reading stdout always gets JSON."""
    click.echo(f"error: {message}", err=True)
    if json_to is not None and not json_to.written:
        json_to.stream.write(json.dumps({"error": message, "exit_code": code}) + "\n")
    sys.exit(code)


def run(group: Any, argv: list[str] | None, prog_name: str) -> None:
    """Invoke the click group; map DeployError, usage errors and interrupts to exit codes."""
    watched = WatchedStdout(sys.stdout) if "--json" in (sys.argv[1:] if argv is None else argv) else None
    real, sys.stdout = sys.stdout, watched or sys.stdout
    try:
        # standalone_mode=False: click returns ctx.exit()'s code instead of exiting (help, version)
        code = group.main(args=argv, prog_name=prog_name, standalone_mode=False)
    except DeployError as e:
        fail(str(e), e.exit_code, watched)
    except OSError as e:  # the filesystem said no: one line, not a traceback (errors.py codes)
        fail(os_error_line(e), EXIT_DISK_FULL if e.errno == errno.ENOSPC else EXIT_INPUT, watched)
    except click.ClickException as e:
        fail(e.format_message().replace("\n", " "), e.exit_code, watched)
    except click.Abort as e:  # click turns Ctrl-C (KeyboardInterrupt) into Abort
        fail("interrupted" if isinstance(e.__cause__, KeyboardInterrupt) else "aborted", EXIT_INTERRUPTED, watched)
    finally:
        sys.stdout = real
    if isinstance(code, int) and code:  # e.g. ctx.exit(3); help and version return 0
        sys.exit(code)
