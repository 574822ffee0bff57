"""Editing JSON documents in tests: one field, by its dotted path (shared by the manifest tests)."""

from __future__ import annotations

import copy
from typing import Any

from resnet_deploy.portable.constants import SCHEMA_VERSION


def with_field(doc: dict, path: str, value: Any) -> dict:
    """A deep copy of doc with the field at `path` ("host.threads") set to value, or removed
    when value is KeyError."""
    doc = copy.deepcopy(doc)
    *parents, last = path.split(".")
    node = doc
    for p in parents:
        node = node[p]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return doc


# One valid document of each kind we read back (the fuzz and bad-input tests start from them).
SHA = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # sha256(b"abc"), the model file
METRICS = {
    "max_abs": 0.1,
    "mean_abs": 0.01,
    "max_abs_rel": 0.02,
    "cosine": 0.99,
    "sqnr_db": 30.0,
    "top1_agreement": 1.0,
    "top5_overlap": 1.0,
    "accuracy": 0.98,
    "ref_accuracy": 0.99,
    "acc_drop": 1.0,
}
VALID = {
    "manifest": {
        "schema_version": SCHEMA_VERSION,
        "target": "onnx",
        "precision": "int8",
        "files": {"model.onnx": {"sha256": SHA, "bytes": 3}},
        "inputs": [{"name": "input", "dtype": "float32", "shape": [1, 8, 8, 3], "layout": "NHWC", "quant": None}],
        "outputs": [{"name": "out", "dtype": "float32", "shape": [1, 10], "layout": "NC", "quant": None}],
    },
    "parity": {
        "model": "m",
        "samples": 2,
        "ok": True,
        "data": {"source": {"kind": "digits"}},
        "reference": {
            "trained": True,
            "preprocessing": {
                "preset": "unit",
                "scale": 0.5,
                "mean": [0],
                "std": [1],
                "channels": "rgb",
                "resize": "stretch",
                "why": "w",
            },
            "predictions": {
                "distinct_top1": 3,
                "classes": 10,
                "mean_entropy_bits": 1.0,
                "max_entropy_bits": 3.3,
                "top_classes": [1, 2],
            },
        },
        "results": [
            {
                "name": "onnx/int8",
                "precision": "int8",
                "artifact": "a",
                "ok": True,
                "metrics": METRICS,
                "breaches": [{"metric": "cosine", "value": 0.5, "limit": 0.9, "kind": "min"}],
                "tolerance": {},
                "runtime": {"threads": 2},
                "seconds": 0.1,
            }
        ],
        "agreement": {
            "metric": "top1_agreement",
            "matrix": {"keras": {"keras": 1.0, "onnx/int8": 1.0}, "onnx/int8": {"keras": 1.0, "onnx/int8": 1.0}},
        },
        "environment": {"cpu": {"model": "x", "arch": "x86_64", "features": {"avx2": True}}, "versions": {}},
    },
    "bench": {
        "model": "m",
        "batch": 1,
        "protocol": {},
        "rows": [
            {
                "backend": "onnx",
                "precision": "int8",
                "threads": 2,
                "threads_used": 2,
                "load_ms": 1.0,
                "first_ms": 1.0,
                "p50": 1.0,
                "p90": 1.0,
                "p99": 1.0,
                "mean": 1.0,
                "std": 0.1,
                "throughput": 10.0,
                "peak_rss_mb": 100.0,
                "size_mb": 1.0,
                "speedup_vs_keras": 2.0,
                "float_fallback": {"float_layers": ["a"], "latency": {"ratio": 1.1, "p50_ms": {"plain_int8": 1.0}}},
                "ops": {"int8": 3, "float": 1, "convert": 2, "float_types": {"Conv": 1}},
            }
        ],
    },
    "throughput": {
        "model": "m",
        "mode": "throughput",
        "batches": [1, 8],
        "protocol": {"warmup_s": 1.0, "seconds": 2.0},
        "rows": [
            {
                "backend": "onnx",
                "precision": "int8",
                "threads": 2,
                "batch": 8,
                "throughput": 100.0,
                "p50": 1.0,
                "p90": 1.0,
                "p99": 2.0,
                "mean": 1.0,
                "requests": 40,
                "seconds": 2.0,
                "streams": 2,
                "load_ms": 1.0,
                "size_mb": 1.0,
                "peak_rss_mb": 9.0,
                "speedup_vs_keras": 2.0,
                "settings": {"how": "h"},
            }
        ],
    },
    "profile": {
        "model": "m",
        "threads": 2,
        "batch": 1,
        "runs": 5,
        "backends": {
            "onnx/int8": {
                "supported": True,
                "total_ms": 1.0,
                "layers": [
                    {
                        "layer": "a",
                        "ms": 1.0,
                        "pct": 100.0,
                        "ops": ["x (Conv)"],
                        "int8": 1,
                        "float": 0,
                        "convert": 0,
                        "folded_in": ["b"],
                    }
                ],
            },
            "tflite/int8": {"supported": False, "why": "none"},
        },
    },
    "diagnose": {
        "model": "m",
        "samples": 2,
        "sqnr_limit_db": 20.0,
        "layers": ["a", "b"],
        "backends": {
            "onnx/int8": {
                "first_divergent": "a",
                "ranked": ["a"],
                "absent": {"b": "no tensor of the artifact resembles it (cosine < 0.9)"},
                "folded": {"c": "a"},
                "layers": [
                    {
                        "layer": "a",
                        "class": "Conv2D",
                        "tensor": "t",
                        "sqnr_db": 10.0,
                        "cosine": 0.9,
                        "max_rel": 0.1,
                        "added_noise_pct": 5.0,
                    }
                ],
            }
        },
    },
    "matrix": {
        "rows": [
            {
                "model": "m",
                "target": "onnx",
                "precision": "int8",
                "verdict": "pass",
                "accuracy": 0.97,
                "keras_accuracy": 0.98,
                "top1_agreement": 0.99,
                "p50_ms": 1.5,
                "speedup": 3.0,
                "size_mb": 0.1,
                "ran_in": "int8",
            },
            {"model": "m", "target": "tflite", "precision": "int8", "verdict": "not exported: no converter"},
        ],
        "models": {"m": {"samples": 10, "trained": True, "keras_p50_ms": 4.5}},
        "protocol": {},
        "environment": {"cpu": {}},
    },
}
