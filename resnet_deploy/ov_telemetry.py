"""OpenVINO's usage telemetry, not sent from our exports (RESNET_DEPLOY_OPENVINO_TELEMETRY=1 lets it).

openvino.convert_model and NNCF report usage through openvino_telemetry, which sends each event
(one when openvino is imported, 16 per convert_model) from a child process forked from the
calling one, so that a missing network cannot hang it. Our exporting process holds TensorFlow,
the model and the converters (2-2.5 GB on ResNet-50 @224): each fork copies its page tables,
and the pages it then writes are copied while a child lives. Measured (AMD EPYC Zen 3, TF and ResNet-50 loaded):
convert_model + compile of ResNet-50's ONNX int8 model 1.6-1.85 s with the events, 0.71-0.86 s
without; a benchmark's process-tree RSS counted the forks' pages again (over 3 GB). Also our
users run offline or in CI, where these sends only fail. Silenced at the source: the telemetry
library's own send methods (its public API) do nothing; its consent checks and files are left
as they are. Process-wide; the OpenVINO target calls it before it imports openvino."""

from __future__ import annotations

import os

ENV = "RESNET_DEPLOY_OPENVINO_TELEMETRY"  # "1": OpenVINO's telemetry as its own settings say
_SENDERS = ("send_event", "send_error", "send_stack_trace", "start_session", "end_session")


def _not_sent(*_args: object, **_kwargs: object) -> None:
    return None


def silence() -> None:
    """Make openvino_telemetry's senders no-ops, unless ENV=1 or it is not installed."""
    if os.environ.get(ENV) == "1":
        return
    try:
        from openvino_telemetry import Telemetry
    except ImportError:
        return
    for name in _SENDERS:
        if hasattr(Telemetry, name):
            setattr(Telemetry, name, _not_sent)
