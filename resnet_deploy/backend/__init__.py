"""What the core knows of a backend: the Target template, its registry and optional hooks, the
Runner base, the CPU facts and device profiles."""

from resnet_deploy.lazy import public

_WHERE = {
    "Target": "target",
    "Tail": "target",
    "register": "target",
    "unregister": "target",
    "get_target": "target",
    "available_targets": "target",
    "targets_with": "target",
    "Runner": "runner",
    "KerasRunner": "runner",
    "cpu_info": "cpu",
    "DeviceProfile": "profiles",
}
__all__ = list(_WHERE)
__getattr__, __dir__ = public(__name__, _WHERE)
