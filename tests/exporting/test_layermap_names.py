"""An int8 tensor keeps the name its fp32 twin had: a damaged layer is found by that name and
measured (low SQNR), never confused with a healthier tensor nor called lost."""

from __future__ import annotations

import numpy as np

from resnet_deploy.exporting.layermap import build, keeps_layer_name


def test_names_the_converters_keep_are_recognised():
    assert keeps_layer_name("model_1/stem_1/Relu#3", "stem")
    assert keeps_layer_name("functional/conv2_block1_out/Relu:0;x/Add", "conv2_block1_out")
    assert not keeps_layer_name("Transpose_33#21", "stem") and not keeps_layer_name("Identity#9", "head")
    assert not keeps_layer_name("model_1/stem_conv_1/Relu", "stem")  # another layer whose name starts alike


def test_a_damaged_layer_is_mapped_by_name_and_an_unnamed_one_by_value():
    rng = np.random.default_rng(0)
    block = rng.normal(size=(1, 4, 4, 8)).astype(np.float32)
    head = rng.normal(size=(1, 10)).astype(np.float32)
    keras_out = {"block_out": block, "head": head}
    fp32 = {"block_out": "m_1/block_out_1/Relu#5", "head": "Identity#9"}
    damaged = block * 0.2 + rng.normal(size=block.shape).astype(np.float32)  # cosine ~0.2: not a match by value
    tensors = {
        "m_1/block_out_1/Relu#6": damaged,
        "Transpose_12#7": block + 0.01,  # a healthier look-alike elsewhere in the graph
        "Identity#11": head + 0.01,
    }
    lm = build("x/int8", keras_out, tensors, ["block_out", "head"], exact=False, only=fp32)
    assert lm.layers["block_out"]["tensor"] == "m_1/block_out_1/Relu#6" and lm.layers["block_out"]["score"] < 0.5
    assert lm.layers["head"]["tensor"] == "Identity#11" and not lm.lost
    lm = build("x/int8", keras_out, {"Identity#11": head}, ["block_out", "head"], exact=False, only=fp32)
    assert lm.lost == ["block_out"]  # neither its name nor anything like it is left
