"""The shapes of the JSON files we read back (artifact manifests, parity, bench and diagnose
results), as JSON Schemas checked with the `jsonschema` library: a file of the wrong shape stops
with one line naming the file, the first place it is wrong and what to do, instead of a
KeyError three functions later. (Bundles are checked by portable/integrity.py, which must run on
devices with numpy only.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from resnet_deploy.errors import InputError, IntegrityError

_NUM = {"type": "number"}
_NUM_OR_NULL = {"type": ["number", "null"]}
_STR = {"type": "string"}
_STRS = {"type": "array", "items": _STR}
_INT0 = {"type": "integer", "minimum": 0}


def _obj(required: dict[str, Any], optional: dict[str, Any] | None = None) -> dict:
    return {"type": "object", "required": list(required), "properties": {**required, **(optional or {})}}


_TENSOR = _obj(
    {"name": _STR, "dtype": _STR, "shape": {"type": "array", "items": {"type": "integer"}}},
    {"layout": _STR, "quant": {"type": ["object", "null"]}},
)

MANIFEST = _obj(
    {
        "target": _STR,
        "precision": _STR,
        "files": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": _obj({"sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"}, "bytes": _INT0}),
        },
        "inputs": {"type": "array", "minItems": 1, "items": _TENSOR},
        "outputs": {"type": "array", "minItems": 1, "items": _TENSOR},
    },
    {
        "model": {"type": "object"},
        "config": {"type": "object"},
        "layer_map": {"type": ["object", "null"]},
        "accuracy_budget": {"type": "object"},
    },
)

_METRICS = (
    "max_abs",
    "mean_abs",
    "max_abs_rel",
    "cosine",
    "sqnr_db",
    "top1_agreement",
    "top5_overlap",
    "accuracy",
    "ref_accuracy",
)
_BREACH = _obj({"metric": _STR, "value": _NUM, "limit": _NUM, "kind": {"enum": ["max", "min"]}})
_OBJ = {"type": "object"}

_REFERENCE = _obj(
    {},
    {
        "trained": {"type": ["boolean", "null"]},
        "preprocessing": {
            "type": ["object", "null"],
            "required": ["scale", "mean", "std", "channels", "resize"],
            "properties": {"scale": _NUM, "preset": {"type": ["string", "null"]}},
        },
        "predictions": {
            "type": ["object", "null"],
            "required": ["distinct_top1", "classes", "mean_entropy_bits", "max_entropy_bits", "top_classes"],
        },
    },
)

PARITY = _obj(
    {
        "model": _STR,
        "samples": _INT0,
        "data": _obj({}, {"source": _OBJ}),
        "reference": _REFERENCE,
        "agreement": _obj(
            {
                "metric": _STR,
                "matrix": {
                    "type": "object",
                    "additionalProperties": {"type": "object", "additionalProperties": _NUM_OR_NULL},
                },
            }
        ),
        "environment": _obj({}, {"cpu": _obj({}, {"features": _OBJ, "model": _STR, "arch": _STR}), "versions": _OBJ}),
        "results": {
            "type": "array",
            "items": _obj(
                {
                    "name": {"type": "string", "pattern": "^[^/]+/[^/]+$"},
                    "precision": _STR,
                    "metrics": {
                        **_obj({m: _NUM_OR_NULL for m in _METRICS}, {"acc_drop": _NUM_OR_NULL}),
                        "additionalProperties": False,
                    },
                    "breaches": {"type": "array", "items": _BREACH},
                    "runtime": _OBJ,
                    "tolerance": _OBJ,
                    "seconds": _NUM,
                    "artifact": {"type": ["string", "null"]},
                }
            ),
        },
    }
)

_ROW = _obj(
    {
        k: _NUM
        for k in (
            "threads",
            "load_ms",
            "first_ms",
            "p50",
            "p90",
            "p99",
            "mean",
            "std",
            "throughput",
            "peak_rss_mb",
            "size_mb",
        )
    }
    | {"backend": _STR, "precision": _STR, "threads_used": {"type": ["integer", "string", "null"]}},
    {
        "speedup_vs_keras": _NUM_OR_NULL,
        "ops": _obj(
            {"int8": _INT0, "float": _INT0, "convert": _INT0},
            {"float_types": {"type": "object", "additionalProperties": _INT0}},
        ),
        "float_fallback": _obj({"float_layers": _STRS}, {"repairs": _STRS, "latency": {"type": ["object", "null"]}}),
    },
)

BENCH = _obj(
    {"model": _STR, "batch": {"type": "integer", "minimum": 1}, "rows": {"type": "array", "items": _ROW}},
    {
        "protocol": _obj({}, {k: _NUM for k in ("warmup_runs", "warmup_s", "runs", "seconds", "max_runs")}),
        "trained": {"type": ["boolean", "null"]},
    },
)

_THROUGHPUT_ROW = _obj(
    {
        k: _NUM
        for k in (
            "threads",
            "batch",
            "throughput",
            "p50",
            "p90",
            "p99",
            "mean",
            "requests",
            "seconds",
            "streams",
            "load_ms",
            "size_mb",
            "peak_rss_mb",
        )
    }
    | {"backend": _STR, "precision": _STR, "settings": {"type": "object"}},
    {"speedup_vs_keras": _NUM_OR_NULL},
)

THROUGHPUT = _obj(
    {
        "model": _STR,
        "mode": {"const": "throughput"},
        "batches": {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 1}},
        "rows": {"type": "array", "items": _THROUGHPUT_ROW},
    },
    {"protocol": _obj({}, {k: _NUM for k in ("warmup_s", "seconds")}), "trained": {"type": ["boolean", "null"]}},
)

_PROFILE_LAYER = _obj(
    {"layer": _STR, "ms": _NUM, "pct": _NUM, "ops": _STRS, "int8": _INT0, "float": _INT0, "convert": _INT0},
    {"folded_in": _STRS},
)

PROFILE = _obj(
    {
        "model": _STR,
        "threads": {"type": "integer"},
        "batch": {"type": "integer"},
        "runs": {"type": "integer"},
        "backends": {
            "type": "object",
            "additionalProperties": {
                "oneOf": [
                    _obj(
                        {
                            "supported": {"const": True},
                            "total_ms": _NUM,
                            "layers": {"type": "array", "items": _PROFILE_LAYER},
                        }
                    ),
                    _obj({"supported": {"const": False}, "why": _STR}),
                ]
            },
        },
    }
)

_GATE_ENTRY = _obj(
    {},
    {m: _NUM_OR_NULL for m in ("accuracy", "top1_agreement", "sqnr_db", "latency_ratio")}
    | {"parity_ok": {"type": "boolean"}},
)

GATE = _obj(
    {
        "kind": _STR,
        "schema_version": {"type": "integer"},
        "model": _STR,
        "samples": _INT0,
        "entries": {"type": "object", "additionalProperties": _GATE_ENTRY},
    },
    {"data": {"type": ["object", "null"]}, "cpu": {"type": ["string", "null"]}, "utc": _STR},
)

DIAGNOSE = _obj(
    {
        "model": _STR,
        "layers": _STRS,
        "sqnr_limit_db": _NUM,
        "samples": _INT0,
        "backends": {
            "type": "object",
            "additionalProperties": _obj(
                {
                    "first_divergent": {"type": ["string", "null"]},
                    "ranked": _STRS,
                    "absent": {"type": "object", "additionalProperties": _STR},
                    "folded": {"type": "object", "additionalProperties": {"type": ["string", "null"]}},
                    "layers": {
                        "type": "array",
                        "items": _obj(
                            {"layer": _STR, "class": _STR, "sqnr_db": _NUM, "cosine": _NUM, "added_noise_pct": _NUM},
                            {"max_rel": _NUM},
                        ),
                    },
                }
            ),
        },
    },
    {"root_cause": {"type": "object", "additionalProperties": _obj({"fix": _STR, "channel_spread": _NUM})}},
)

_CELL = _obj(
    {"model": _STR, "target": _STR, "precision": _STR, "verdict": _STR},
    {k: _NUM_OR_NULL for k in ("accuracy", "keras_accuracy", "top1_agreement", "p50_ms", "speedup", "size_mb")}
    | {"ran_in": {"type": ["string", "null"]}},
)
MATRIX = _obj(
    {
        "rows": {"type": "array", "items": _CELL},
        "models": {
            "type": "object",
            "additionalProperties": _obj(
                {"samples": {"type": "integer", "minimum": 1}},
                {"trained": {"type": "boolean"}, "keras_p50_ms": _NUM_OR_NULL},
            ),
        },
    },
    {"protocol": {"type": "object"}, "environment": {"type": "object"}},
)

SCHEMAS = {
    "manifest": MANIFEST,
    "parity": PARITY,
    "bench": BENCH,
    "throughput": THROUGHPUT,
    "profile": PROFILE,
    "gate": GATE,
    "diagnose": DIAGNOSE,
    "matrix": MATRIX,
}


def _cross_check(data: dict, kind: str) -> str | None:
    """What a schema cannot say: names that must refer to each other."""
    if kind == "parity":
        names = set(data["agreement"]["matrix"])
        if any(set(row) != names for row in data["agreement"]["matrix"].values()):
            return "at agreement/matrix: not every backend is compared with every other"
    if kind == "diagnose":
        for b, r in data["backends"].items():
            unknown = {lay["layer"] for lay in r["layers"]} - set(data["layers"])
            if unknown:
                return f"at backends/{b}/layers: layer {sorted(unknown)[0]!r} is not in layers"
    return None


def problem(data: Any, kind: str) -> str | None:
    """The first way `data` does not fit the schema of `kind`, in words, or None."""
    import jsonschema

    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(SCHEMAS[kind]).iter_errors(data))
    if error is None:
        return _cross_check(data, kind)
    where = "/".join(str(p) for p in error.absolute_path) or "the top level"
    return f"at {where}: {error.message[:160]}"


def check(data: Any, kind: str, path: Path, fix: str) -> None:
    """Raise one line (IntegrityError for a manifest, InputError otherwise) unless `data` fits."""
    what = problem(data, kind)
    if what is not None:
        err = IntegrityError if kind == "manifest" else InputError
        raise err(f"{str(path)!r} is not a resnet-deploy {kind} ({what}); {fix}.")


def read_checked(path: Path, kind: str, fix: str) -> Any:
    """A JSON file we wrote, parsed and checked against its schema before it is trusted. Unreadable
    or of the wrong shape: one line naming the file and `fix` (IntegrityError for a manifest,
    InputError otherwise). A missing file raises FileNotFoundError, for the caller to word."""
    import json

    def no_nan(token: str) -> float:
        if token == "NaN":  # not a number: a limit or a metric of NaN would switch its comparison off
            raise ValueError("it holds NaN, which is not a number")
        return float(token)

    try:
        data = json.loads(Path(path).read_text(), parse_constant=no_nan)
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError, ValueError) as e:
        err = IntegrityError if kind == "manifest" else InputError
        raise err(f"{str(path)!r} is not valid JSON ({e}); {fix}.") from None
    check(data, kind, Path(path), fix)
    return data
