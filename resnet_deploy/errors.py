"""One error hierarchy for the whole project.

The library raises these; only the CLI turns them into one-line messages and exit codes.
Every message names the problem *and* the fix.
"""
from __future__ import annotations


class DeployError(Exception):
    """Base of every error resnet-deploy raises on purpose."""

    exit_code = 1


class InputError(DeployError):
    """Bad user input: unknown name, missing file, wrong shape, NaN data, empty folder."""

    exit_code = 2


class ExportError(DeployError):
    """A converter or quantizer failed on a valid input."""

    exit_code = 3


class BackendUnavailable(DeployError):
    """The runtime or converter a target needs is not installed."""

    exit_code = 4


class ParityError(DeployError):
    """An artifact does not compute what the Keras model computes, within tolerance."""

    exit_code = 5


class IntegrityError(DeployError):
    """An artifact or manifest does not match its recorded sha256."""

    exit_code = 6
