"""What one target of an export measured or made on a calibration set, for a later target of the
same export: ORT's activation ranges for TFLite (calibration/ranges.py), the ONNX int8 model for
OpenVINO (targets/openvino/from_onnx.py). A board is scoped to one export (start() resets it) and
keyed to the model object, so nothing measured for another model or another export is taken."""

from __future__ import annotations

import hashlib
import weakref
from dataclasses import dataclass
from typing import Any

# What a taker is told when nothing was offered for its model, one per board (CalibrationSet.boards()).
NOTHING_OFFERED = "no earlier target of this export measured ranges"
NO_INT8_ONNX = "no earlier target of this export made an ONNX int8 model"


class Board:
    """One thing a target offers on a calibration set during an export, or why it has none."""

    def __init__(self, nothing: str) -> None:
        self.nothing = nothing  # the reason a taker gets when nothing was offered for its model
        self.start(False)

    def start(self, wanted: bool) -> None:
        """A new export on this set: nothing offered yet; `wanted`: a later target can take it
        (the offering target then makes it). An export calls start(False) when it ends."""
        self.wanted = wanted
        self._model: Any = None
        self._offered: Any = self.nothing

    def offer(self, model: Any, offered: Any) -> None:
        """What was measured or made with `model` on this set, or (a str) why there is none."""
        self._model, self._offered = weakref.ref(model), offered

    def for_model(self, model: Any) -> Any:
        """What was offered for this very model object, or (a str) why there is nothing to take."""
        if self._model is None or self._model() is not model:
            return self.nothing
        return self._offered


@dataclass(frozen=True)
class Int8Onnx:
    """The ONNX int8 model one export made (its file's bytes), with its quantization record."""

    data: bytes
    quantization: dict

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()
