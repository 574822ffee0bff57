"""Parity metrics and tolerance checks, computed in float64 (host and device alike)."""
import numpy as np


def is_classifier_output(y):
    """A (samples, classes) output with at least two classes: top-1 metrics apply."""
    return y.ndim == 2 and y.shape[1] >= 2


def _top5_sum(ref, out):
    """Sum over samples of the share of the reference's top-5 classes that out also ranks top-5."""
    k = min(5, ref.shape[1])
    rk = np.argsort(-ref)[:, :k]  # along the last axis: the classes
    ok = np.argsort(-out)[:, :k]
    return float(sum(len(set(a) & set(b)) / k for a, b in zip(rk, ok)))


class Accumulator(object):
    """The sums and maxima compare()'s metrics follow from, added batch by batch; merge() adds
    another (a shard's). Metrics over many batches or machines are exact (counts and float64 sums),
    never averages of averages."""

    SUMS = ("samples", "elements", "sum_abs", "dot", "ref_sq", "out_sq", "noise", "top1_same", "top5_sum",
            "labelled", "correct", "ref_correct")
    MAXES = ("max_abs", "ref_peak")

    def __init__(self, state=None):
        state = state or {}
        for k in self.SUMS + self.MAXES:
            setattr(self, k, state.get(k, 0))
        self.classifier = state.get("classifier")

    def add(self, ref, out, labels=None):
        ref64 = np.asarray(ref, dtype=np.float64)
        out64 = np.asarray(out, dtype=np.float64)
        if ref64.shape != out64.shape:
            raise ValueError("output shape %s differs from reference %s" % (out64.shape, ref64.shape))
        diff = (out64 - ref64).ravel()
        r, o = ref64.ravel(), out64.ravel()
        self.samples += len(ref64)
        self.elements += diff.size
        self.max_abs = max(self.max_abs, float(np.abs(diff).max()))
        self.ref_peak = max(self.ref_peak, float(np.abs(r).max()))
        self.sum_abs += float(np.abs(diff).sum())
        self.dot += float(r @ o)
        self.ref_sq += float(r @ r)
        self.out_sq += float(o @ o)
        self.noise += float(diff @ diff)
        self.classifier = is_classifier_output(ref64)
        if self.classifier:
            ref_top1, out_top1 = ref64.argmax(1), out64.argmax(1)
            self.top1_same += int(np.sum(ref_top1 == out_top1))
            self.top5_sum += _top5_sum(ref64, out64)
            if labels is not None:
                self.labelled += len(ref64)
                self.correct += int(np.sum(out_top1 == labels))
                self.ref_correct += int(np.sum(ref_top1 == labels))
        return self

    def merge(self, other):
        for k in self.SUMS:
            setattr(self, k, getattr(self, k) + getattr(other, k))
        for k in self.MAXES:
            setattr(self, k, max(getattr(self, k), getattr(other, k)))
        if self.classifier is None:
            self.classifier = other.classifier
        return self

    def state(self):
        """Plain numbers, to send between processes and merge."""
        return dict({k: getattr(self, k) for k in self.SUMS + self.MAXES}, classifier=self.classifier)

    def result(self):
        """compare()'s metrics over everything added."""
        if not self.samples:
            raise ValueError("no samples were compared")
        denom = float(np.sqrt(self.ref_sq) * np.sqrt(self.out_sq))
        cosine = self.dot / denom if denom else (1.0 if self.noise == 0 else 0.0)
        # no noise: infinitely good; noise on an all-zero reference: infinitely bad (not log10(0)'s warning)
        sqnr = (float("inf") if self.noise == 0 else float("-inf") if self.ref_sq == 0
                else float(10 * np.log10(self.ref_sq / self.noise)))
        m = {"max_abs": self.max_abs, "mean_abs": self.sum_abs / self.elements,
             "max_abs_rel": self.max_abs / (self.ref_peak or 1.0), "cosine": float(cosine), "sqnr_db": sqnr,
             "top1_agreement": None, "top5_overlap": None, "accuracy": None, "ref_accuracy": None}
        if self.classifier:
            m["top1_agreement"] = self.top1_same / self.samples
            m["top5_overlap"] = self.top5_sum / self.samples
            if self.labelled:
                m["accuracy"] = self.correct / self.labelled
                m["ref_accuracy"] = self.ref_correct / self.labelled
        return m


def compare(ref, out, labels=None):
    """Metrics of `out` against `ref` (same shape, sample-major)."""
    return Accumulator().add(ref, out, labels).result()


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
