"""Editing JSON documents in tests: one field, by its dotted path (shared by the manifest tests)."""
from __future__ import annotations

import copy
from typing import Any


def with_field(doc: dict, path: str, value: Any) -> dict:
    """A deep copy of doc with the field at `path` ("host.threads") set to value, or removed
    when value is KeyError."""
    doc = copy.deepcopy(doc)
    *parents, last = path.split(".")
    node = doc
    for p in parents:
        node = node[p]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return doc
