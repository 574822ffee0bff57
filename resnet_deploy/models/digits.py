"""The trained `digits` classifier: a small ResNet built from the seed's residual block,
trained on scikit-learn's handwritten digits with a fixed seed.

Weights ship in resnet_deploy/data/ (about 120 KB). Re-train them with

    python -m resnet_deploy.models.digits --out resnet_deploy/data

which prints the held-out accuracy and writes `digits.weights.h5` and `digits.json`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from resnet_deploy.errors import InputError

INPUT_SHAPE = (32, 32, 3)
CLASSES = 10
SEED = 0
DATA_DIR = Path(__file__).parents[1] / "data"
WEIGHTS = DATA_DIR / "digits.weights.h5"
RECORD = DATA_DIR / "digits.json"


def build() -> Any:
    """Architecture: stem conv 16 -> seed block(16) -> conv 32 /2 -> seed block(32) -> GAP -> Dense(10)."""
    from resnet_deploy.models.architectures import keras_module, residual_block

    keras = keras_module()
    layers = keras.layers
    inp = keras.Input(INPUT_SHAPE, name="input")
    x = layers.Conv2D(16, 3, padding="same", use_bias=False, name="stem_conv")(inp)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    x = residual_block(x, 16, name="block1", use_bias=False)
    x = layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False, name="down_conv")(x)
    x = layers.BatchNormalization(name="down_bn")(x)
    x = layers.ReLU(name="down_relu")(x)
    x = residual_block(x, 32, name="block2", use_bias=False)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    out = layers.Dense(CLASSES, name="logits")(x)
    return keras.Model(inp, out, name="digits")


def dataset(split: str) -> tuple[np.ndarray, np.ndarray]:
    """Preprocessed (N, 32, 32, 3) float32 inputs and labels of a split, via the one PreprocessSpec."""
    from resnet_deploy.calibration.dataset import CalibrationSet
    from resnet_deploy.calibration.preprocess import PreprocessSpec
    from resnet_deploy.calibration.sources import DigitsSource

    x, y = CalibrationSet(DigitsSource(split=split), PreprocessSpec.for_input_shape((None, *INPUT_SHAPE))).arrays()
    assert y is not None
    return x, y


def load_trained() -> Any:
    """The digits model with the shipped weights."""
    if not WEIGHTS.exists():
        raise InputError(
            f"Shipped weights {str(WEIGHTS)!r} are missing; re-install the package or run "
            "`python -m resnet_deploy.models.digits --out resnet_deploy/data`."
        )
    model = build()
    model.load_weights(WEIGHTS)
    return model


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(logits, axis=-1) == labels))


def train(epochs: int = 20, out: Path = DATA_DIR) -> dict:
    """Train with a fixed seed on the train split; report accuracy on the held-out test split."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(SEED)
    tf.config.experimental.enable_op_determinism()
    x_train, y_train = dataset("train")
    x_test, y_test = dataset("test")
    model = build()
    model.compile(
        optimizer=keras.optimizers.Adam(2e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    t0 = time.perf_counter()
    model.fit(x_train, y_train, epochs=epochs, batch_size=32, shuffle=True, verbose=2)
    seconds = time.perf_counter() - t0
    test_acc = accuracy(model.predict(x_test, verbose=0), y_test)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_weights(out / WEIGHTS.name)
    record = {
        "seed": SEED,
        "epochs": epochs,
        "train_images": len(y_train),
        "test_images": len(y_test),
        "test_accuracy": round(test_acc, 4),
        "train_seconds": round(seconds, 1),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }
    (out / RECORD.name).write_text(json.dumps(record, indent=2) + "\n")
    return record


def main() -> None:
    p = argparse.ArgumentParser(description="Train the digits ResNet and write its weights.")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--out", type=Path, default=DATA_DIR)
    args = p.parse_args()
    print(json.dumps(train(args.epochs, args.out), indent=2))


if __name__ == "__main__":
    main()
