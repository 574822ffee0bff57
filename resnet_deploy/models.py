"""Which model a command means: the built-in models by name (architectures.py, digits.py), a
user's own model file (Keras safe_mode on), and ModelRef, the typed reference every request
carries instead of loose name/size/classes/width arguments.

Keras is imported inside the functions so that `import resnet_deploy` stays cheap.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from resnet_deploy import architectures as arch
from resnet_deploy.architectures import (residual_block, resnet18, resnet34, resnet50, seed,  # noqa: F401
                                         seed_nobias)
from resnet_deploy.errors import InputError

def digits() -> Any:
    """The trained digits classifier (see resnet_deploy/digits.py), weights shipped in the package."""
    from resnet_deploy import digits as _digits

    return _digits.load_trained()


@dataclass(frozen=True)
class ModelSpec:
    """A built-in model: how to build it and what it is."""

    name: str
    build: Callable[..., Any]
    description: str
    trained: bool = False


BUILTIN_MODELS: dict[str, ModelSpec] = {
    "seed": ModelSpec("seed", arch.seed, "the seed network: 64x64x3 -> 64x64x64, two residual blocks"),
    "seed_nobias": ModelSpec("seed_nobias", arch.seed_nobias, "the seed network without conv bias before BN"),
    "resnet18": ModelSpec("resnet18", arch.resnet18, "ResNet-18, basic blocks (random init)"),
    "resnet34": ModelSpec("resnet34", arch.resnet34, "ResNet-34, basic blocks (random init)"),
    "resnet50": ModelSpec("resnet50", arch.resnet50, "ResNet-50 v1.5, bottleneck blocks (random init)"),
    "digits": ModelSpec("digits", digits, "small ResNet trained on scikit-learn digits (32x32x3, 10 classes)", True),
}

_USER_MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")
RANDOM_INIT_SEED = 0  # random-init built-ins get the same weights on every run: same artifacts, reusable


def _seeded_build(build: Callable[..., Any], kwargs: dict) -> Any:
    """Build with Keras' initializers seeded, leaving the caller's Python and numpy RNGs as they were."""
    import random

    import numpy as np

    keras = arch.keras_module()
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        keras.utils.set_random_seed(RANDOM_INIT_SEED)
        return build(**kwargs)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


def load_model(name_or_path: str | Path, input_size: int | None = None, classes: int | None = None,
               width: int | None = None) -> tuple[str, Any]:
    """Return (model_name, keras.Model) for a built-in name or a user's model file.

    A user's model (`.keras`, `.h5` or a SavedModel directory) loads with Keras safe_mode on,
    so a model file cannot run arbitrary Python (lambda layers) while loading.
    """
    key = str(name_or_path)
    if key in BUILTIN_MODELS:
        spec = BUILTIN_MODELS[key]
        kwargs: dict[str, Any] = {}
        if key.startswith("resnet"):
            if input_size is not None:
                kwargs["input_shape"] = (input_size, input_size, 3)
            if classes is not None:
                kwargs["classes"] = classes
            if width is not None:
                kwargs["width"] = width
        elif any(v is not None for v in (input_size, classes, width)):
            raise InputError(f"Model {key!r} has a fixed architecture; --input-size/--classes/--width apply to resnet18/34/50 only.")
        return key, spec.build(**kwargs) if spec.trained else _seeded_build(spec.build, kwargs)
    path = Path(key).expanduser()
    if not path.exists():
        looks_like_path = path.suffix or "/" in key or "\\" in key
        if looks_like_path:
            raise InputError(f"Model file {str(path)!r} does not exist; pass an existing .keras/.h5 file or SavedModel directory.")
        raise InputError(f"Unrecognized model={key!r}. Supported: {', '.join(BUILTIN_MODELS)}, or a path to a .keras/.h5 file or SavedModel directory.")
    return path.stem or path.name, _load_user_model(path)


def _load_user_model(path: Path) -> Any:
    keras = arch.keras_module()
    try:
        if path.is_dir():
            if not (path / "saved_model.pb").exists():
                raise InputError(f"Directory {str(path)!r} is not a SavedModel (no saved_model.pb); pass a .keras/.h5 file or a SavedModel directory.")
            # Keras 3 reads SavedModels only for inference, through TFSMLayer.
            import tensorflow as tf

            loaded = tf.saved_model.load(str(path))
            sig = loaded.signatures.get("serving_default")
            if sig is None:
                raise InputError(f"SavedModel {str(path)!r} has no 'serving_default' signature; re-export it with one.")
            (in_name, in_spec), = sig.structured_input_signature[1].items()
            inp = keras.Input(tuple(in_spec.shape[1:]), name="input")
            out = keras.layers.TFSMLayer(str(path), call_endpoint="serving_default")(inp)
            if isinstance(out, dict):
                if len(out) != 1:
                    raise InputError(f"SavedModel {str(path)!r} has {len(out)} outputs; only single-output models are supported.")
                out = next(iter(out.values()))
            return keras.Model(inp, out, name=path.name)
        if path.suffix.lower() not in _USER_MODEL_SUFFIXES:
            raise InputError(f"Model file {str(path)!r} has an unsupported suffix; use .keras, .h5 or a SavedModel directory.")
        return keras.models.load_model(path, compile=False, safe_mode=True)
    except InputError:
        raise
    except Exception as e:  # noqa: BLE001 - any loader failure on user data is a user error
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"Could not load model {str(path)!r} ({first[:200]}); is it a valid Keras model file?") from e


@dataclass(frozen=True)
class ModelRef:
    """Which model a request means: a built-in name or a path, and the built-in's options."""

    name: str = "digits"
    input_size: int | None = None
    classes: int | None = None
    width: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", str(self.name))
        for field_name in ("input_size", "classes", "width"):
            v = getattr(self, field_name)
            if v is not None and int(v) < 1:
                raise InputError(f"--{field_name.replace('_', '-')} {v} must be >= 1.")

    @property
    def options(self) -> dict[str, int]:
        """The options that were given (for a worker process that loads the model again)."""
        return {k: v for k, v in (("input_size", self.input_size), ("classes", self.classes),
                                  ("width", self.width)) if v is not None}

    @property
    def workspace_name(self) -> str:
        """The folder name under --out: a built-in's name, or a model file's stem."""
        return self.name if self.name in BUILTIN_MODELS else (Path(self.name).stem or Path(self.name).name)

    def load(self) -> tuple[str, Any]:
        """(model name, keras.Model)."""
        return load_model(self.name, self.input_size, self.classes, self.width)
