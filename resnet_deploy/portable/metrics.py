"""Parity metrics and tolerance checks, computed in float64 (host and device alike)."""
import numpy as np


def is_classifier_output(y):
    """A (samples, classes) output with at least two classes: top-1 metrics apply."""
    return y.ndim == 2 and y.shape[1] >= 2


def _top5_overlap(ref, out):
    k = min(5, ref.shape[1])
    rk = np.argsort(-ref)[:, :k]  # along the last axis: the classes
    ok = np.argsort(-out)[:, :k]
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(rk, ok)]))


def compare(ref, out, labels=None):
    """Metrics of `out` against `ref` (same shape, sample-major)."""
    ref64 = np.asarray(ref, dtype=np.float64)
    out64 = np.asarray(out, dtype=np.float64)
    if ref64.shape != out64.shape:
        raise ValueError("output shape %s differs from reference %s" % (out64.shape, ref64.shape))
    diff = out64 - ref64
    ref_peak = float(np.abs(ref64).max()) or 1.0
    r, o = ref64.ravel(), out64.ravel()
    denom = float(np.linalg.norm(r) * np.linalg.norm(o))
    cosine = float(r @ o / denom) if denom else (1.0 if not np.any(diff) else 0.0)
    noise = float(np.sum(diff ** 2))
    signal = float(np.sum(ref64 ** 2))
    # no noise: infinitely good; noise on an all-zero reference: infinitely bad (not log10(0)'s warning)
    sqnr = float("inf") if noise == 0 else float("-inf") if signal == 0 else float(10 * np.log10(signal / noise))
    m = {"max_abs": float(np.abs(diff).max()), "mean_abs": float(np.abs(diff).mean()),
         "max_abs_rel": float(np.abs(diff).max()) / ref_peak, "cosine": cosine, "sqnr_db": sqnr,
         "top1_agreement": None, "top5_overlap": None, "accuracy": None, "ref_accuracy": None}
    if is_classifier_output(ref64):
        ref_top1, out_top1 = ref64.argmax(1), out64.argmax(1)
        m["top1_agreement"] = float(np.mean(ref_top1 == out_top1))
        m["top5_overlap"] = _top5_overlap(ref64, out64)
        if labels is not None:
            m["accuracy"] = float(np.mean(out_top1 == labels))
            m["ref_accuracy"] = float(np.mean(ref_top1 == labels))
    return m


def acc_drop(m):
    """Accuracy drop in percentage points (positive = worse than the reference), or None.
    Rounded to 1e-9 points so that a drop of exactly the limit (9 of 450 samples is 2 points)
    is not a breach by float noise (100 * (0.95 - 0.93) is 2.0000000000000018)."""
    if m.get("accuracy") is None or m.get("ref_accuracy") is None:
        return None
    return round(100.0 * (m["ref_accuracy"] - m["accuracy"]), 9)


# (metric, tolerance field, kind): "max" means value <= limit, "min" means value >= limit
CHECKS = (("max_abs_rel", "max_abs_rel", "max"), ("cosine", "cosine_min", "min"), ("sqnr_db", "sqnr_min_db", "min"),
          ("top1_agreement", "top1_min", "min"), ("acc_drop", "acc_drop_max", "max"))


def check(m, tol):
    """Every tolerance the metrics break, as dicts {metric, value, limit, kind}."""
    values = dict(m, acc_drop=acc_drop(m))
    out = []
    for metric, field, kind in CHECKS:
        value, limit = values.get(metric), tol.get(field)
        if value is None or limit is None:
            continue
        bad = value > limit if kind == "max" else value < limit
        if bad or value != value:  # NaN never passes
            out.append({"metric": metric, "value": float(value), "limit": float(limit), "kind": kind})
    return out


def breach_text(b):
    """One breach as the host and the device print it: `cosine=0.91 (limit >= 0.98)`."""
    op = "<=" if b["kind"] == "max" else ">="
    return "%s=%.6g (limit %s %.10g)" % (b["metric"], b["value"], op, b["limit"])
