"""Which model a command means: built-in networks by name, a user's model file or keras.applications
ResNet, checked before and after loading."""

from resnet_deploy.lazy import public

_WHERE = {
    "ModelRef": "source",
    "BUILTIN_MODELS": "source",
    "load_model": "source",
    "check_model": "check",
}
__all__ = list(_WHERE)
__getattr__, __dir__ = public(__name__, _WHERE)
