"""TFLite's own export options (Target.own_options): the CLI's flags and the manifest read them here."""

from __future__ import annotations

import enum

from resnet_deploy.config import Option


class IODtype(str, enum.Enum):
    """Dtype of an int8 model's inputs and outputs."""

    INT8 = "int8"  # what microcontrollers and NPUs take
    FLOAT = "float"  # float I/O with quantize/dequantize ops inside the model


IO_DTYPE = Option("io_dtype", IODtype, IODtype.INT8, "TFLite int8 model I/O: int8 or float")

OPTIONS = (IO_DTYPE,)
