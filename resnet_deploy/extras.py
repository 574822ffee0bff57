"""Optional parts installed as extras: a command that needs one says which, in one line."""

from __future__ import annotations

from importlib.util import find_spec

from resnet_deploy.errors import BackendUnavailable

# extra -> the modules it installs (pyproject's [project.optional-dependencies])
EXTRAS = {
    "fleet": ("ansible", "ansible_runner"),
    "signing": ("model_signing", "OpenSSL", "cryptography"),
    "cluster": ("ray",),
}


def require(extra: str, feature: str) -> None:
    """Raise BackendUnavailable (exit 4) naming the extra when any of its modules is missing."""
    missing = [m for m in EXTRAS[extra] if find_spec(m) is None]
    if missing:
        raise BackendUnavailable(
            f"{feature} needs the {extra!r} extra ({', '.join(missing)} not installed): "
            f"pip install 'resnet-deploy[{extra}]'."
        )
