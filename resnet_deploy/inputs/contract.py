"""The preprocessing contract: which pixels-to-inputs transform a model gets, and why, and
which data a command may use by default. Declared by the user (--preprocess and friends), or
read from the model (a Rescaling/Normalization layer right after the input means it takes raw
pixels; keras.applications ResNets have their own preset); never guessed silently: every
command prints the choice and its reason, and the manifest records both."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from resnet_deploy.calibration.preprocess import CHANNEL_ORDERS, PRESETS, RESIZE_MODES, PreprocessSpec
from resnet_deploy.errors import InputError

IN_MODEL_PREPROCESSING = ("Rescaling", "Normalization")
LOW_ACCURACY_MARGIN = 5.0  # points above chance: a fp32 Keras model this close to chance is being fed garbage


def _floats(value: Any, what: str) -> tuple[float, ...] | None:
    if value is None or isinstance(value, tuple):
        return value
    try:
        return tuple(float(v) for v in str(value).split(",") if v.strip())
    except ValueError:
        raise InputError(f"--{what} {value!r} is not a comma list of numbers, e.g. 0.485,0.456,0.406.") from None


@dataclass(frozen=True)
class PreprocessOptions:
    """What the user declared; None means "not given" (the model decides)."""

    preset: str | None = None
    mean: tuple[float, ...] | str | None = None
    std: tuple[float, ...] | str | None = None
    scale: float | None = None
    channel_order: str | None = None
    resize: str | None = None

    def __post_init__(self) -> None:
        if self.preset is not None and self.preset not in PRESETS:
            raise InputError(f"Unrecognized preprocess={self.preset!r}. Supported: {', '.join(PRESETS)}.")
        object.__setattr__(self, "mean", _floats(self.mean, "mean"))
        object.__setattr__(self, "std", _floats(self.std, "std"))
        for name in ("mean", "std"):  # 1 value for every channel, or one per channel of an RGB/BGR image
            values = getattr(self, name)
            if values is not None and len(values) not in (1, 3):
                raise InputError(f"--{name} has {len(values)} values; pass 1 (every channel) or 3 (RGB/BGR).")
        if self.channel_order is not None and self.channel_order not in CHANNEL_ORDERS:
            raise InputError(
                f"Unrecognized channel order {self.channel_order!r}. Supported: {', '.join(CHANNEL_ORDERS)}."
            )
        if self.resize is not None and self.resize not in RESIZE_MODES:
            raise InputError(f"Unrecognized resize={self.resize!r}. Supported: {', '.join(RESIZE_MODES)}.")

    @property
    def declared(self) -> bool:
        return any(
            v is not None for v in (self.preset, self.mean, self.std, self.scale, self.channel_order, self.resize)
        )


def first_layer_preprocessing(model: Any) -> Any:
    """The Rescaling/Normalization layer right after the model's input, or None."""
    layers = [layer for layer in getattr(model, "layers", []) if type(layer).__name__ != "InputLayer"]
    if layers and type(layers[0]).__name__ in IN_MODEL_PREPROCESSING:
        return layers[0]
    return None


def model_default(
    model: Any, model_name: str, trained_with: str | None, trained_why: str | None = None
) -> tuple[str, str]:
    """(preset, why) when the user declared none."""
    layer = first_layer_preprocessing(model)
    if layer is not None:
        return "raw", (
            f"the model's first layer after its input is {type(layer).__name__} ({layer.name}): "
            "it takes raw 0..255 pixels"
        )
    if trained_with:
        return trained_with, trained_why or f"the preprocessing {model_name} is made for"
    return "unit", "the default (x/255); state your model's with --preprocess"


def resolve(
    options: PreprocessOptions,
    model: Any,
    model_name: str,
    trained_with: str | None = None,
    trained_why: str | None = None,
) -> tuple[PreprocessSpec | None, str]:
    """The spec for this model and the reason it was chosen (None for a model whose input is not
    an image: its data must already be model inputs). trained_with/trained_why: the preset the
    model was trained with, when known (a built-in, or a recognised keras.applications ResNet)."""
    if len(model.input_shape) != 4 and not options.declared:
        return None, "the model's input is not an NHWC image: data is taken as model inputs, as it is"
    if options.preset is not None:
        preset, why = options.preset, "declared with --preprocess"
    else:
        preset, why = model_default(model, model_name, trained_with, trained_why)
    order, scale, mean, std, _ = PRESETS[preset]
    channels = int(model.input_shape[-1]) if len(model.input_shape) == 4 else 0
    if channels == 1 and (order == "bgr" or len(options.mean or mean) == 3 or len(options.std or std) == 3):
        raise InputError(
            f"--preprocess {preset} is for 3-channel RGB models; {model_name} takes 1 channel: "
            "use unit, raw, symmetric or --mean/--std with one value."
        )
    overrides = {
        k: v
        for k, v in (
            ("scale", options.scale),
            ("mean", options.mean),
            ("std", options.std),
            ("channels", options.channel_order),
            ("resize", options.resize),
        )
        if v is not None
    }
    if overrides:
        why += "; " + ", ".join(f"{k}={v}" for k, v in overrides.items()) + " given"
    fields = {"scale": scale, "mean": mean, "std": std, "preset": preset, **overrides}
    if order and "channels" not in overrides:
        fields["channels"] = order
    if overrides.keys() & {"scale", "mean", "std", "channels"}:
        fields["preset"] = None  # no longer exactly the preset
    return PreprocessSpec.for_input_shape(tuple(model.input_shape), **fields), why


def describe(spec: PreprocessSpec | None) -> str:
    """One line: what the spec does."""
    if spec is None:
        return "none"
    name = spec.preset or "custom"
    return (
        f"{name} (scale {spec.scale:.6g}, mean {list(spec.mean)}, std {list(spec.std)}, {spec.channels}, {spec.resize})"
    )


def data_source(given: str | None, model_ref: Any, option: str) -> str:
    """The data a command uses: what was given, or the model's default; a user's model must say."""
    if given is not None:
        return given
    default = model_ref.default_data
    if default is None:
        raise InputError(
            f"{model_ref.name} needs its own images: pass {option} DIR|FILE.npz (class subfolders or "
            "a .npz with 'labels' also give accuracy); the built-in digits are for the digits model only."
        )
    return default


def low_accuracy_hint(model: Any, spec: PreprocessSpec) -> str:
    """The likely fix when a model scores near chance on its own labelled data."""
    layer = first_layer_preprocessing(model)
    if layer is not None and spec.scale != 1.0:
        return (
            f"the model has a {type(layer).__name__} layer after its input, so it takes raw pixels: "
            "try --preprocess raw"
        )
    return (
        "check --preprocess (the model's own preprocessing), the channel order, and that the label order "
        "matches the model's classes (class subfolders are numbered in natural order: 2 before 10)"
    )


def check_labels(labels: Any, classes: int) -> None:
    """Labels must be whole numbers in 0..classes-1: any other value would give a plausible
    accuracy and status ok."""
    import numpy as np

    from resnet_deploy.calibration.sources import whole_numbers

    labels = np.asarray(labels)
    if labels.size == 0:
        return
    if not whole_numbers(labels):
        raise InputError(
            f"labels must be whole class numbers; got {labels.dtype} values such as {labels.ravel()[0]!r}: "
            "pass integer labels 0..classes-1."
        )
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi >= classes:
        bad = lo if lo < 0 else hi
        raise InputError(
            f"label {bad} is outside 0..{classes - 1} (the model has {classes} classes): "
            "fix the labels (or the class subfolders) to match the model's outputs."
        )


def check_reference_accuracy(outputs: Any, labels: Any, model: Any, spec: PreprocessSpec, allow: bool) -> None:
    """Refuse labels outside the model's classes, and a reference whose Keras fp32 accuracy is
    within 5 points of chance (or below): the preprocessing contract or the labels are wrong, and
    any comparison would be meaningless."""
    import numpy as np

    if labels is None or outputs.ndim != 2 or outputs.shape[1] < 2:
        return
    check_labels(labels, int(outputs.shape[1]))
    if allow:
        return
    classes = outputs.shape[1]
    acc = 100.0 * float(np.mean(outputs.argmax(1) == labels))
    chance = 100.0 / classes
    if acc <= chance + LOW_ACCURACY_MARGIN:
        raise InputError(
            f"the Keras model itself scores {acc:.1f}% on this labelled data (chance is {chance:.1f}%): "
            f"{low_accuracy_hint(model, spec)}. Pass --allow-low-accuracy for an untrained model."
        )


def prediction_summary(outputs: Any) -> dict | None:
    """For unlabelled data: how spread the Keras predictions are (a collapsed model shows)."""
    import numpy as np

    if outputs.ndim != 2 or outputs.shape[1] < 2:
        return None
    z = outputs - outputs.max(1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    entropy = float(np.mean(-(p * np.log2(np.clip(p, 1e-12, 1))).sum(1)))
    top1 = outputs.argmax(1)
    counts = np.bincount(top1, minlength=outputs.shape[1])
    order = np.argsort(-counts)[:5]
    return {
        "classes": int(outputs.shape[1]),
        "distinct_top1": int((counts > 0).sum()),
        "mean_entropy_bits": round(entropy, 4),
        "max_entropy_bits": round(float(np.log2(outputs.shape[1])), 4),
        "top_classes": {int(c): int(counts[c]) for c in order if counts[c]},
    }
