"""Which model a command means: the built-in models by name (architectures.py, digits.py), a
user's own model file (Keras safe_mode on), and ModelRef, the typed reference every request
carries instead of loose name/size/classes/width arguments.

Keras is imported inside the functions so that `import resnet_deploy` stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from resnet_deploy.models import architectures as arch
from resnet_deploy.models import keras_apps
from resnet_deploy.models.architectures import residual_block as residual_block  # the builders, re-exported
from resnet_deploy.models.architectures import resnet18 as resnet18
from resnet_deploy.models.architectures import resnet34 as resnet34
from resnet_deploy.models.architectures import resnet50 as resnet50
from resnet_deploy.models.architectures import seed as seed
from resnet_deploy.models.architectures import seed_nobias as seed_nobias
from resnet_deploy.errors import InputError, first_line


def digits() -> Any:
    """The trained digits classifier (see resnet_deploy/models/digits.py), weights shipped in the package."""
    from resnet_deploy.models import digits as _digits

    return _digits.load_trained()


@dataclass(frozen=True)
class ModelSpec:
    """A built-in model: how to build it and what it is."""

    name: str
    build: Callable[..., Any]
    description: str
    trained: bool = False
    preprocess: str | None = None  # the preset it was trained with (None: untrained, the default applies)
    options: tuple[str, ...] = ()  # which of input_size/classes/width/weights it takes


_RESNET = ("input_size", "classes", "width")

BUILTIN_MODELS: dict[str, ModelSpec] = {
    "seed": ModelSpec("seed", arch.seed, "the seed network: 64x64x3 -> 64x64x64, two residual blocks"),
    "seed_nobias": ModelSpec("seed_nobias", arch.seed_nobias, "the seed network without conv bias before BN"),
    "resnet18": ModelSpec("resnet18", arch.resnet18, "ResNet-18, basic blocks (random init)", options=_RESNET),
    "resnet34": ModelSpec("resnet34", arch.resnet34, "ResNet-34, basic blocks (random init)", options=_RESNET),
    "resnet50": ModelSpec(
        "resnet50", arch.resnet50, "ResNet-50 v1.5, bottleneck blocks (random init)", options=_RESNET
    ),
    "digits": ModelSpec(
        "digits", digits, "small ResNet trained on scikit-learn digits (32x32x3, 10 classes)", True, preprocess="unit"
    ),
    **{
        f"{keras_apps.PREFIX}{app}": ModelSpec(
            f"{keras_apps.PREFIX}{app}",
            keras_apps.build,
            f"keras.applications.{app} (random init unless --weights FILE)",
            preprocess=preset,
            options=("input_size", "classes", "weights"),
        )
        for app, preset in keras_apps.RESNETS.items()
    },
}

_USER_MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")
PARAMS_AT_WIDTH_64 = 25.6e6  # ResNet-50's parameters (the largest built-in); they grow with the width squared
DEFAULT_SIZE, DEFAULT_WIDTH = 224, 64  # architectures.py's defaults for the ResNets


def estimate_bytes(input_size: int, width: int, batch: int = 1) -> int:
    """Memory a built-in ResNet of this size needs, roughly: its float32 weights three times over
    (Keras, a converter's copy, its frozen graph) and ~4 live activations of the widest stage
    ((size/2)^2 x width floats each) per sample."""
    return int(4 * 3 * PARAMS_AT_WIDTH_64 * (width / 64) ** 2 + 4 * input_size**2 * width * batch)


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


def _builtin_kwargs(key: str, spec: ModelSpec, given: dict[str, Any]) -> dict[str, Any]:
    """The builder's arguments from the options given; an option the model does not take is an error."""
    extra = [k for k, v in given.items() if v is not None and k not in spec.options]
    if extra:
        takes = ", ".join(f"--{o.replace('_', '-')}" for o in spec.options) or "none"
        raise InputError(f"Model {key!r} does not take --{extra[0].replace('_', '-')} (it takes: {takes}).")
    if key.startswith(keras_apps.PREFIX):
        return {"name": key, **{k: v for k, v in given.items() if v is not None}}
    kwargs = {k: v for k, v in given.items() if v is not None and k != "input_size"}
    if given.get("input_size") is not None:
        kwargs["input_shape"] = (given["input_size"], given["input_size"], 3)
    return kwargs


def check_source(
    name_or_path: str | Path, weights: Path | None = None, trust: bool = False, given: dict[str, Any] | None = None
) -> Path | None:
    """Everything about the model that can be known without TensorFlow: a built-in's options and
    weights file, a user file's existence, kind and container, a SavedModel's trust. Returns the
    user's path (None for a built-in)."""
    key = str(name_or_path)
    if key in BUILTIN_MODELS:
        _builtin_kwargs(key, BUILTIN_MODELS[key], {**(given or {}), "weights": weights})
        if key.startswith(keras_apps.PREFIX):
            keras_apps.check_options(key, (given or {}).get("input_size"), weights)
        return None
    if weights is not None:
        raise InputError("--weights applies to the keras:ResNet* built-ins; a model file carries its own weights.")
    path = Path(key).expanduser()
    if not path.exists():
        looks_like_path = path.suffix or "/" in key or "\\" in key
        if looks_like_path:
            raise InputError(
                f"Model file {str(path)!r} does not exist; pass an existing .keras/.h5 file or SavedModel directory."
            )
        raise InputError(
            f"Unrecognized model={key!r}. Supported: {', '.join(BUILTIN_MODELS)}, or a path to a .keras/.h5 file or SavedModel directory."
        )
    if path.is_dir():
        if not (path / "saved_model.pb").exists():
            raise InputError(
                f"Directory {str(path)!r} is not a SavedModel (no saved_model.pb); pass a .keras/.h5 file or a SavedModel directory."
            )
        if not trust:
            raise InputError(
                f"{str(path)!r} is a SavedModel: loading one runs its graph, which can read and write "
                f"files on this machine; save the model as .keras, or {TRUST_HINT}."
            )
        return path
    if path.suffix.lower() not in _USER_MODEL_SUFFIXES:
        raise InputError(
            f"Model file {str(path)!r} has an unsupported suffix; use .keras, .h5 or a SavedModel directory."
        )
    _check_container(path)
    return path


def load_model(
    name_or_path: str | Path,
    input_size: int | None = None,
    classes: int | None = None,
    width: int | None = None,
    weights: Path | None = None,
    trust: bool = False,
) -> tuple[str, Any]:
    """Return (model_name, keras.Model) for a built-in name or a user's model file.

    A user's `.keras` or `.h5` file loads with Keras safe_mode on, so it cannot run Python
    (Lambda layers) while loading. A SavedModel runs its graph (which may read and write files)
    and a Lambda layer runs its Python: both are refused unless `trust` (`--trust-model`).
    """
    key = str(name_or_path)
    given = {"input_size": input_size, "classes": classes, "width": width}
    path = check_source(key, weights, trust, given)
    if path is None:
        spec = BUILTIN_MODELS[key]
        kwargs = _builtin_kwargs(key, spec, {**given, "weights": weights})
        built = spec.build(**kwargs) if spec.trained or weights else _seeded_build(spec.build, kwargs)
        return workspace_name(key), built
    return workspace_name(key), _load_user_model(path, trust)


def workspace_name(name: str) -> str:
    """The folder name under --out: a built-in's name (keras:ResNet50 -> ResNet50), or a file's stem."""
    if name in BUILTIN_MODELS:
        return name.removeprefix(keras_apps.PREFIX)
    return Path(name).stem or Path(name).name


def _check_container(path: Path) -> None:
    """A .keras file is a zip and an .h5 an HDF5 file: say so plainly instead of Keras' "File not
    found" for a file that exists."""
    import zipfile

    if path.is_file() and path.suffix.lower() == ".keras" and not zipfile.is_zipfile(path):
        raise InputError(
            f"{str(path)!r} is not a .keras file (not a zip archive); pass a model saved with model.save()."
        )
    if path.is_file() and path.suffix.lower() in (".h5", ".hdf5"):
        with open(path, "rb") as f:
            if f.read(8) == b"\x89HDF\r\n\x1a\n":
                return
        raise InputError(f"{str(path)!r} is not an HDF5 (.h5) file; pass a model saved with model.save().")


TRUST_HINT = "pass --trust-model only if you trust the file's source"


def _load_user_model(path: Path, trust: bool = False) -> Any:
    """The model in a file check_source accepted."""
    keras = arch.keras_module()
    try:
        if path.is_dir():
            # Keras 3 reads SavedModels only for inference, through TFSMLayer.
            import tensorflow as tf

            loaded = tf.saved_model.load(str(path))
            sig = loaded.signatures.get("serving_default")
            if sig is None:
                raise InputError(f"SavedModel {str(path)!r} has no 'serving_default' signature; re-export it with one.")
            ((in_name, in_spec),) = sig.structured_input_signature[1].items()
            inp = keras.Input(tuple(in_spec.shape[1:]), name="input")
            out = keras.layers.TFSMLayer(str(path), call_endpoint="serving_default")(inp)
            if isinstance(out, dict):
                if len(out) != 1:
                    raise InputError(
                        f"SavedModel {str(path)!r} has {len(out)} outputs; only single-output models are supported."
                    )
                out = next(iter(out.values()))
            return keras.Model(inp, out, name=path.name)
        return keras.models.load_model(path, compile=False, safe_mode=not trust)
    except InputError:
        raise
    except ValueError as e:
        if "safe_mode" not in str(e):
            raise InputError(
                f"Could not load model {str(path)!r} ({first_line(e, 200)}); is it a valid Keras model file?"
            ) from e
        raise InputError(
            f"{str(path)!r} holds a Lambda layer whose Python code would run on load; refused. Rebuild "
            f"it without Lambda layers, or {TRUST_HINT}."
        ) from None
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
    weights: Path | None = None  # keras:ResNet* only: a local weights file
    trust: bool = False  # --trust-model: load a SavedModel or Lambda layers (their code runs on load)

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", str(self.name))
        if self.weights is not None:
            object.__setattr__(self, "weights", Path(self.weights))
        for field_name in ("input_size", "classes", "width"):
            v = getattr(self, field_name)
            if v is not None and int(v) < 1:
                raise InputError(f"--{field_name.replace('_', '-')} {v} must be >= 1.")
        if self.input_size is not None or self.width is not None:
            self.check_fits(1)

    def check_fits(self, batch: int) -> None:
        """Refuse, before anything is built, a size this machine's memory cannot hold."""
        from resnet_deploy.portable.limits import memory_problem

        size, width = self.input_size or DEFAULT_SIZE, self.width or DEFAULT_WIDTH
        if self.name == "digits" or self.builtin is None:
            size, width = self.input_size or 8, self.width or 1  # unknown here: the least a ResNet input can be
        why = memory_problem(
            estimate_bytes(size, width, batch), f"a ResNet at --input-size {size} --width {width} with batch {batch}"
        )
        if why:
            raise InputError(f"{why}; use a smaller --input-size, --width or --batch.")

    @property
    def options(self) -> dict[str, int | str]:
        """The options that were given (for a worker process that loads the model again)."""
        return {
            k: v
            for k, v in (
                ("input_size", self.input_size),
                ("classes", self.classes),
                ("width", self.width),
                ("weights", str(self.weights) if self.weights else None),
                ("trust", self.trust or None),
            )
            if v is not None
        }

    @property
    def workspace_name(self) -> str:
        return workspace_name(self.name)

    @property
    def builtin(self) -> ModelSpec | None:
        return BUILTIN_MODELS.get(self.name)

    @property
    def trained(self) -> bool:
        """False for random-init built-ins (speed only); a user's file is taken as trained."""
        spec = self.builtin
        return True if spec is None else (spec.trained or self.weights is not None)

    @property
    def default_data(self) -> str | None:
        """Data a command may use without being told: the digits for digits, synthetic noise for
        an untrained built-in, nothing for a user's model (it must say)."""
        if self.name == "digits":
            return "digits"
        return None if self.trained else "synthetic"

    @property
    def trained_with(self) -> str | None:
        spec = self.builtin
        return spec.preprocess if spec is not None else None

    def check(self) -> None:
        """Refuse, without TensorFlow, what load() would refuse after importing it (models.check_source)."""
        check_source(
            self.name,
            self.weights,
            self.trust,
            {"input_size": self.input_size, "classes": self.classes, "width": self.width},
        )

    def load(self) -> tuple[str, Any]:
        """(model name, keras.Model)."""
        return load_model(self.name, self.input_size, self.classes, self.width, self.weights, self.trust)
