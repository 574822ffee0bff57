"""Installed versions of the tools we record in manifests and reports (no imports of the tools)."""

from __future__ import annotations

from importlib import metadata


def versions(*dists: str) -> dict[str, str]:
    """{distribution: version} for each installed distribution; absent ones are left out."""
    out = {}
    for d in dists:
        try:
            out[d] = metadata.version(d)
        except metadata.PackageNotFoundError:
            continue
    return out
