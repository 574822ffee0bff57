"""One error hierarchy for the whole project.

The library raises these; only the CLI turns them into one-line messages and exit codes
(the codes are shared with the device self-test: resnet_deploy/portable/constants.py).
Every message names the problem *and* the fix.
"""

from __future__ import annotations

from resnet_deploy.portable import constants as _c


class DeployError(Exception):
    """Base of every error resnet-deploy raises on purpose."""

    exit_code = _c.EXIT_ERROR


class InputError(DeployError):
    """Bad user input: unknown name, missing file, wrong shape, NaN data, empty folder."""

    exit_code = _c.EXIT_INPUT


class ExportError(DeployError):
    """A converter or quantizer failed on a valid input."""

    exit_code = _c.EXIT_EXPORT


class BackendUnavailable(DeployError):
    """The runtime or converter a target needs is not installed."""

    exit_code = _c.EXIT_RUNTIME


class PrecisionMismatch(DeployError):
    """A runtime did not compile the model in the precision it was asked for."""

    exit_code = _c.EXIT_RUNTIME


class ParityError(DeployError):
    """An artifact does not compute what the Keras model computes, within tolerance."""

    exit_code = _c.EXIT_PARITY


class DeviceMismatch(DeployError):
    """The device is not what the bundle was built for (its device profile)."""

    exit_code = _c.EXIT_PROFILE


class DiskFull(DeployError):
    """No space left for what was being written (on this machine or on a device)."""

    exit_code = _c.EXIT_DISK_FULL


class IntegrityError(DeployError):
    """An artifact or manifest does not match its recorded sha256."""

    exit_code = _c.EXIT_INTEGRITY


def first_line(e: BaseException, limit: int = 300) -> str:
    """The first non-empty line of an exception's message, or its type name if it has none."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return (lines[0] if lines else type(e).__name__)[:limit]


def converter_said(log: list[str] | None, limit: int = 200) -> str:
    """The most telling line a converter printed (the last one that mentions an error), or ''."""
    lines = [ln.strip() for text in (log or []) for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower()]
    return (errors or [""])[-1][:limit]
