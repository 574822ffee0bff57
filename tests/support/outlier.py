"""A trained model whose plain int8 breaks for a reason we can name: one activation channel a
thousand times larger than the others.

The digits model, rescaled so that channel C of `down_bn`'s output (and so of down_relu,
block2_add, block2_out and avg_pool) is K times larger while every fp32 output stays the same:
BatchNormalization is affine, ReLU is positively homogeneous, and the consumers divide it back
(block2_conv1's and logits' weights for that input channel by K). Per-tensor int8 activation
ranges are then set by that one channel, and the other 31 channels of down_relu lose nearly all
their precision: int8 accuracy collapses on every backend, starting at down_bn/down_relu.
"""

from __future__ import annotations

from pathlib import Path

CHANNEL = 5
K = 1000.0


def build(k: float = K, channel: int = CHANNEL):
    """The digits model with the outlier channel (same fp32 function)."""
    from resnet_deploy.models.digits import load_trained

    m = load_trained()
    for name in ("down_bn", "block2_bn2"):  # gamma and beta scale the channel's output by k
        gamma, beta, mean, var = m.get_layer(name).get_weights()
        gamma[channel] *= k
        beta[channel] *= k
        m.get_layer(name).set_weights([gamma, beta, mean, var])
    (w,) = m.get_layer("block2_conv1").get_weights()  # consumes down_relu: undo the scale
    w[:, :, channel, :] /= k
    m.get_layer("block2_conv1").set_weights([w])
    kernel, bias = m.get_layer("logits").get_weights()  # consumes avg_pool(block2_out)
    kernel[channel, :] /= k
    m.get_layer("logits").set_weights([kernel, bias])
    return m


def save(path: Path, k: float = K) -> Path:
    build(k).save(path)
    return path
