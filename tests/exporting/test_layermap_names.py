"""An int8 layer is found without trusting int8's values: by the name its tensor has in the fp32
artifact, or by value on the int8 graph with its quantizers removed. A damaged layer is measured
(low SQNR), never confused with a healthier look-alike; a layer fused by the int8 quantizer is
folded into its nearest mapped descendant in the graph, never called absent."""

from __future__ import annotations

import numpy as np

from resnet_deploy.exporting.layermap import build, build_int8

RNG = np.random.default_rng(0)
BLOCK = RNG.normal(size=(1, 4, 4, 8)).astype(np.float32)
HEAD = RNG.normal(size=(1, 10)).astype(np.float32)
KERAS = {"conv": BLOCK * 0.5, "block_out": BLOCK, "pool": BLOCK.mean((1, 2)), "head": HEAD}
ORDER = ["conv", "block_out", "pool", "head"]
GRAPH = {"conv": ["block_out"], "block_out": ["pool"], "pool": ["head"], "head": []}
DAMAGED = BLOCK * 0.2 + RNG.normal(size=BLOCK.shape).astype(np.float32)  # cosine ~0.2: no match by value


def test_a_damaged_layer_is_measured_under_its_fp32_name_and_a_fused_one_is_folded():
    fp32 = {"conv": "Conv__2:0", "block_out": "m_1/block_out_1/Relu:0", "pool": "Squeeze__9:0", "head": "Identity:0"}
    tensors = {
        "m_1/block_out_1/Relu:0": DAMAGED,  # the quantizer fused conv into it: Conv__2:0 is gone
        "Transpose_12:0": BLOCK + 0.01,  # a healthier look-alike elsewhere in the graph
        "Squeeze__9:0": DAMAGED.mean((1, 2)),
        "Identity:0": HEAD + 0.01,
    }
    lm = build_int8("x/int8", KERAS, tensors, ORDER, fp32, GRAPH)
    assert lm.layers["block_out"]["tensor"] == "m_1/block_out_1/Relu:0" and lm.layers["block_out"]["score"] < 0.5
    assert set(lm.layers) == {"block_out", "pool", "head"} and not lm.absent
    assert lm.folded == {"conv": "block_out"}


def test_on_a_twin_without_quantizers_layers_are_found_by_value_and_measured_on_int8():
    fp32 = {"block_out": "Transpose_5#3", "pool": "Transpose_8#4", "head": "head/BiasAdd#5"}  # the fp32 IR's names
    twin = {"Convolution_3#0": BLOCK * 0.5, "Relu_7#1": BLOCK + 1e-3, "Mean_9#2": KERAS["pool"], "head/BiasAdd#3": HEAD}
    int8 = {
        "Convolution_3#0": BLOCK * 0.5,
        "Relu_7#1": DAMAGED,
        "Relu_7/fq_output_0#2": DAMAGED,
        "Mean_9#3": KERAS["pool"] * 0.1,
        "head/BiasAdd#4": HEAD,
    }
    lm = build_int8("x/int8", KERAS, int8, ORDER, fp32, GRAPH, twin=twin)
    assert lm.layers["block_out"]["tensor"] == "Relu_7/fq_output_0#2"  # as its consumer reads it
    assert lm.layers["pool"]["tensor"] == "Mean_9#3" and lm.layers["head"]["tensor"] == "head/BiasAdd#4"
    assert lm.folded == {"conv": "block_out"}  # not in the fp32 map: fused there
    del twin["Mean_9#2"]
    lm = build_int8("x/int8", KERAS, int8, ORDER, fp32, GRAPH, twin=twin)
    assert "pool" in lm.absent and "quantizers removed" in lm.absent["pool"]


def test_a_folded_layer_goes_to_its_descendant_not_the_next_layer_in_order():
    """A shortcut conv listed before the main branch's last BN is carried by its own BN."""
    order = ["sc", "c2", "n2", "scn", "add"]
    graph = {"sc": ["scn"], "c2": ["n2"], "n2": ["add"], "scn": ["add"], "add": []}
    out = {k: RNG.normal(size=(1, 6)).astype(np.float32) for k in order}
    tensors = {"t_n2": out["n2"], "t_scn": out["scn"], "t_add": out["add"]}
    lm = build("x", out, tensors, order, exact=True, graph=graph)
    assert lm.folded == {"sc": "scn", "c2": "n2"}
    assert build("x", out, tensors, order, exact=True).folded["sc"] == "n2"  # order alone gets it wrong
