"""What the targets of one export hand each other: the activation ranges ORT measured, for TFLite
(calibration/ranges.py), and the ONNX int8 model, for OpenVINO (targets/openvino/from_onnx.py).

The export engine makes one Exchange per export, wanting only what a later target of that export
takes (Target.takes), and hands it to every target it begins (Target.exchange). It ends with the
export, so nothing measured in another export, or for another model, is ever taken."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

# What a taker is told when nothing was offered, one per kind of offer.
NOTHING_OFFERED = "no earlier target of this export measured ranges"
NO_INT8_ONNX = "no earlier target of this export made an ONNX int8 model"
KINDS = ("ranges", "int8_onnx")


class Offer:
    """One thing a target may offer a later target of the export, or why there is none."""

    def __init__(self, nothing: str, wanted: bool) -> None:
        self.nothing = nothing  # the reason a taker gets when nothing was offered
        self.wanted = wanted  # a later target takes it: the offering target makes it
        self._offered: Any = nothing

    def offer(self, offered: Any) -> None:
        """What was measured or made, or (a str) why there is none."""
        self._offered = offered

    def taken(self) -> Any:
        """What was offered, or (a str) why there is nothing to take."""
        return self._offered


class Exchange:
    """The offers of one export; `wanted`: the kinds (KINDS) a later target of it takes."""

    def __init__(self, wanted: frozenset[str] | set[str] = frozenset()) -> None:
        unknown = set(wanted) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown offers {sorted(unknown)}; known: {', '.join(KINDS)}")
        self.ranges = Offer(NOTHING_OFFERED, "ranges" in wanted)
        self.int8_onnx = Offer(NO_INT8_ONNX, "int8_onnx" in wanted)


@dataclass(frozen=True)
class Int8Onnx:
    """The ONNX int8 model one export made (its file's bytes), with its quantization record."""

    data: bytes
    quantization: dict

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()
