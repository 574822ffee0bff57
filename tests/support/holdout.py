"""A ResNet none of our code was written against: other layer names, a 5x5 stem with a bias and
a max-pool, a strided 1x1 shortcut, trained on digits (its weights: holdout.weights.h5, made by
`python -m tests.support.holdout`), and optionally one activation channel made K times larger
in the residual stream (b_n2 and b_scn's gamma and beta, the head's weights for that input
divided by K): the fp32 function is the same, plain int8 collapses on every backend.
"""

from __future__ import annotations

from pathlib import Path

WEIGHTS = Path(__file__).parent / "data" / "holdout.weights.h5"
CHANNEL = 3
K = 1000.0


def architecture(flatten: bool = False):
    """flatten: a Flatten between the pooling and the head (as older ResNets have): the outlier's
    channel group then reaches a layer that cross-layer equalization does not rescale through."""
    import keras
    from keras import layers as L

    x = inp = keras.Input((32, 32, 3), name="pixels")
    x = L.Conv2D(16, 5, padding="same", name="entry")(x)
    x = L.ReLU(name="entry_act")(x)
    x = s = L.MaxPooling2D(2, name="entry_pool")(x)
    for i, name in enumerate(("a_c1", "a_c2")):
        x = L.Conv2D(16, 3, padding="same", use_bias=False, name=name)(x)
        x = L.BatchNormalization(name=f"a_n{i + 1}")(x)
        x = L.ReLU(name="a_r1")(x) if i == 0 else x
    x = L.ReLU(name="a_out")(L.Add(name="a_add")([x, s]))
    s = L.BatchNormalization(name="b_scn")(L.Conv2D(32, 1, strides=2, use_bias=False, name="b_sc")(x))
    x = L.Conv2D(32, 3, strides=2, padding="same", use_bias=False, name="b_c1")(x)
    x = L.ReLU(name="b_r1")(L.BatchNormalization(name="b_n1")(x))
    x = L.BatchNormalization(name="b_n2")(L.Conv2D(32, 3, padding="same", use_bias=False, name="b_c2")(x))
    x = L.ReLU(name="b_out")(L.Add(name="b_add")([x, s]))
    x = L.GlobalAveragePooling2D(name="pool")(x)
    x = L.Flatten(name="flat")(x) if flatten else x
    return keras.Model(inp, L.Dense(10, name="head")(x), name="holdout")


def build(k: float | None = None, channel: int = CHANNEL, flatten: bool = False):
    """The trained hold-out model; with k, channel `channel` of the residual stream k times larger."""
    m = architecture(flatten)
    m.load_weights(WEIGHTS)
    if k is not None:
        for name in ("b_n2", "b_scn"):
            gamma, beta, mean, var = m.get_layer(name).get_weights()
            gamma[channel] *= k
            beta[channel] *= k
            m.get_layer(name).set_weights([gamma, beta, mean, var])
        kernel, bias = m.get_layer("head").get_weights()
        kernel[channel, :] /= k
        m.get_layer("head").set_weights([kernel, bias])
    return m


def save(path: Path, k: float | None = K, flatten: bool = False) -> Path:
    build(k, flatten=flatten).save(path)
    return path


def train(epochs: int = 12, seed: int = 7) -> float:
    """Remake holdout.weights.h5 on the digits training split; the test split's accuracy."""
    import keras
    import numpy as np

    from resnet_deploy.models.digits import dataset

    keras.utils.set_random_seed(seed)
    (xt, yt), (xs, ys) = dataset("train"), dataset("test")
    m = architecture()
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    m.compile(keras.optimizers.Adam(2e-3), loss, metrics=["accuracy"])
    m.fit(xt, yt, epochs=epochs, batch_size=32, verbose=0)
    m.save_weights(WEIGHTS)
    return float(np.mean(m.predict(xs, verbose=0).argmax(1) == ys))


if __name__ == "__main__":
    print(f"hold-out model: {100 * train():.1f}% on the digits test split; weights in {WEIGHTS}")
