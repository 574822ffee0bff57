"""Keras -> ONNX with tf2onnx: deterministic (the same model gives the same file) and lean.

tf2onnx 1.17 as shipped, on ResNet-50 @224 (AMD EPYC Zen 3, `python benchmarks/export_speed.py`): 27.2 s and 7.3 GB peak
RSS for a 100 MB model. Two causes, both in its optimizer loop (tf2onnx.optimizer.optimize_graph):
it deep-copies the whole graph, weights included, before each of 12 optimizers on every pass (to
roll back an optimizer that raises), and each pass's `update_proto` re-copies every Const's value
into its NodeProto, whose protobuf arena keeps the old copy: +97 MB per optimizer call. `_lean`
runs the optimizers without the copies and skips re-writing an unchanged Const: 8.4 s, 2.9 GB,
and a byte-identical file. If an optimizer raises in that mode, the conversion is redone with
tf2onnx's own rollback (the manifest says which ran). RESNET_DEPLOY_TF2ONNX_LEAN=0 always uses tf2onnx's own
loop."""

from __future__ import annotations

import contextlib
import functools
import os
import re
from pathlib import Path
from typing import Any, Iterator

from resnet_deploy._tf import frozen_graph_def, inference_function
from resnet_deploy.errors import BackendUnavailable, ExportError, first_line
from resnet_deploy.exporting.memory import release

LEAN_ENV = (
    "RESNET_DEPLOY_TF2ONNX_LEAN"  # "0": tf2onnx's own optimizer loop (the escape hatch, and the benchmark's "before")
)


_COUNTED = re.compile(r"(?<=[A-Za-z0-9_])__\d+(?![0-9])")


def canonical_names(proto: Any) -> None:
    """Names tf2onnx makes up carry a process-wide counter ("mul_1__6") and, when it merges two
    equal nodes, either one's name survives; it also writes the traced function's name into the
    graph doc. Rename every made-up name from the graph itself, in graph order (a made-up node
    becomes "<op>__<k>", its outputs "<op>__<k>:<i>"; other made-up names keep their stem), and
    drop the doc: the same graph gives the same file however many models this process converted
    before. Names from the Keras model are kept. (_ordered_tf2onnx makes the graph itself the same.)"""
    g = proto.graph
    new: dict[str, str] = {}

    def made_up(name: str, stem: str | None = None) -> str:
        if name not in new:
            new[name] = f"{stem or _COUNTED.sub('', name)}__{len(new)}"
        return new[name]

    for n in g.node:
        if _COUNTED.search(n.name):
            n.name = made_up(n.name, n.op_type)
            for i, o in enumerate(n.output):
                if _COUNTED.search(o):
                    new[o] = f"{n.name}:{i}"
    for v in [*g.input, *g.initializer, *g.output, *g.value_info]:
        if _COUNTED.search(v.name):
            v.name = made_up(v.name)
        for d in v.type.tensor_type.shape.dim if hasattr(v, "type") else []:
            if _COUNTED.search(d.dim_param):  # symbolic sizes: "unk__180"
                d.dim_param = made_up(d.dim_param)
    for n in g.node:
        n.input[:] = [made_up(i) if _COUNTED.search(i) else i for i in n.input]
        n.output[:] = [made_up(o) if _COUNTED.search(o) else o for o in n.output]
    g.doc_string = "converted by tf2onnx from a Keras model (resnet-deploy)"


BATCH_DIM = "batch"


def name_batch_dim(proto: Any) -> None:
    """The inputs' and outputs' first dimension, symbolic after conversion ("unk__4"), is named
    "batch" wherever that symbol appears, so tools (Netron, onnxruntime's errors, a user's code)
    show what it is."""
    g = proto.graph
    symbols = {
        v.type.tensor_type.shape.dim[0].dim_param
        for v in [*g.input, *g.output]
        if v.type.tensor_type.shape.dim and v.type.tensor_type.shape.dim[0].dim_param
    }
    for v in [*g.input, *g.output, *g.value_info]:
        for d in v.type.tensor_type.shape.dim:
            if d.dim_param in symbols:
                d.dim_param = BATCH_DIM


@contextlib.contextmanager
def _ordered_tf2onnx(tf2onnx: Any) -> Iterator[None]:
    """tf2onnx's optimisers walk sets: of Node objects (Graph.extract_sub_graph_nodes, whose order
    then becomes the graph's node order, so it follows memory addresses) and of node names
    (find_output_consumers, which follows the per-process hash seed). The graph they produce then
    differs from run to run (onnx/tensorflow-onnx#2006): 3 different files from 6 runs of one
    command here, 52 or 53 nodes on resnet18 @32. While we convert, both return their nodes in the
    graph's own order instead: 6 of 6 runs and 16 of 16 in-process conversions identical."""
    graph = tf2onnx.graph.Graph
    extract, consumers = graph.extract_sub_graph_nodes, graph.find_output_consumers

    def in_graph_order(self: Any, nodes: list) -> list:
        keep = set(nodes)
        if len(keep) < 2:  # most calls (one consumer): nothing to order, no order table to build
            return list(keep)
        order = {id(n): i for i, n in enumerate(self.get_nodes())}
        return sorted(keep, key=lambda n: (order.get(id(n), len(order)), n.name))

    graph.extract_sub_graph_nodes = lambda self, *a, **k: in_graph_order(self, extract(self, *a, **k))
    graph.find_output_consumers = lambda self, name: in_graph_order(self, consumers(self, name))
    try:
        yield
    finally:
        graph.extract_sub_graph_nodes, graph.find_output_consumers = extract, consumers


@contextlib.contextmanager
def _lean(tf2onnx: Any) -> Iterator[None]:
    """Optimizers without tf2onnx's per-optimizer deep copy, and no re-copy of unchanged Consts."""
    from tf2onnx import convert, graph

    optimize_graph, update_proto = convert.optimizer.optimize_graph, graph.Node.update_proto

    def optimize_no_copies(g: Any, catch_errors: bool = True, optimizers: Any = None) -> Any:
        return optimize_graph(g, False, optimizers)

    def update_unless_same_const(self: Any, external_tensor_storage: Any = None) -> None:
        if external_tensor_storage is not None or self.type != "Const":
            return update_proto(self, external_tensor_storage)
        now = (tuple(self.attr.values()), tuple(self.input), tuple(self.output))
        last = getattr(self, "_rd_written", None)
        if (
            last is not None
            and len(last[0]) == len(now[0])
            and all(a is b for a, b in zip(last[0], now[0]))
            and last[1:] == now[1:]
        ):
            return None  # the NodeProto already holds exactly these attribute objects
        update_proto(self, external_tensor_storage)
        self._rd_written = now
        return None

    convert.optimizer.optimize_graph, graph.Node.update_proto = optimize_no_copies, update_unless_same_const
    loader = convert.tf_loader.from_function
    convert.tf_loader.from_function = functools.partial(_frozen_lean, loader)
    try:
        yield
    finally:
        convert.optimizer.optimize_graph, graph.Node.update_proto = optimize_graph, update_proto
        convert.tf_loader.from_function = loader


def _frozen_lean(loader: Any, func: Any, input_names: list, output_names: list, large_model: bool = False) -> Any:
    """tf2onnx's tf_loader.from_function without its spare copies of the graph during grappler.
    It freezes to a GraphDef without the ConcreteFunction TF builds from it (_tf.frozen_graph_def,
    tf2onnx's arguments), which tf2onnx would only export its GraphDef from again: the GraphDef is
    imported into a plain graph for its shapes instead. Nor is it imported
    into a session first (that only drops resource-typed inputs, which from_function's input
    names never have). The same ONNX file (tests); tf2onnx's peak on ResNet-50 @224 2.96 -> 2.0
    GB (README). Anything unusual (large models, freezing errors tf2onnx repairs) goes to
    tf2onnx's own."""
    from tf2onnx import tf_loader

    if large_model:
        return loader(func, input_names, output_names, large_model)
    tf = tf_loader.tf
    try:
        graph_def, _ = frozen_graph_def(func, aggressive_inlining=True)  # tf2onnx's arguments
        with tf.Graph().as_default() as shapes:
            tf.graph_util.import_graph_def(graph_def, name="")
            graph_def = shapes.as_graph_def(add_shapes=True)
    except ValueError:
        return loader(func, input_names, output_names, large_model)
    del shapes
    release()
    graph_def = tf_loader.fix_freezing_errors_part2(graph_def)
    with tf.Graph().as_default():  # grappler's meta graph needs graph mode, not the graph imported
        return tf_loader.tf_optimize(input_names, output_names, graph_def)


def keras_to_onnx(model: Any, path: Path, opset: int) -> dict:
    """Keras 3 -> ONNX with tf2onnx through a tf.function with an explicit input signature
    (Keras 3 models break tf2onnx.convert.from_keras without one). NHWC is kept. Returns how
    tf2onnx's optimizers ran, for the manifest."""
    try:
        import onnx
        import tf2onnx
    except ImportError as e:
        raise BackendUnavailable(f"ONNX export needs tf2onnx and onnx ({e}); pip install tf2onnx onnx.") from e
    fn, spec = inference_function(model)
    lean = os.environ.get(LEAN_ENV, "1") != "0"
    how = {"optimizers": "lean (no per-optimizer graph copies)" if lean else f"tf2onnx rollback mode ({LEAN_ENV}=0)"}
    try:
        with _ordered_tf2onnx(tf2onnx):
            try:
                with _lean(tf2onnx) if lean else contextlib.nullcontext():
                    proto, _ = tf2onnx.convert.from_function(fn, input_signature=spec, opset=opset, output_path=None)
            except Exception as e:  # noqa: BLE001 - an optimizer raised: tf2onnx's own mode skips it
                how = {"optimizers": "tf2onnx rollback mode", "why": f"lean mode failed: {first_line(e, 200)}"}
                proto, _ = tf2onnx.convert.from_function(fn, input_signature=spec, opset=opset, output_path=None)
        canonical_names(proto)
        name_batch_dim(proto)
        onnx.checker.check_model(proto, full_check=True)
    except Exception as e:  # noqa: BLE001 - converter failures come in many types
        raise ExportError(f"tf2onnx failed at opset {opset}: {first_line(e)}") from e
    onnx.save(proto, str(path))
    return how
