"""Typed results: every command returns a frozen dataclass; its to_dict() is what the command
writes as JSON (and prints under --json), and from_dict() reads that back."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, TypeVar

R = TypeVar("R", bound="Record")


def plain(value: Any) -> Any:
    """A result as JSON-ready values: records as their dicts, tuples as lists, all the way down."""
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


@dataclass(frozen=True)
class Record:
    """A command's typed result. Fields whose value is None and marked `optional` in their
    metadata are left out of the dict (a result that did not measure something says nothing of it)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            f.name: plain(getattr(self, f.name))
            for f in fields(self)
            if not (f.metadata.get("optional") and getattr(self, f.name) is None)
        }

    @classmethod
    def from_dict(cls: type[R], d: dict[str, Any]) -> R:
        """Read back what to_dict() wrote (keys it does not know are ignored, checked by the schema first)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})
