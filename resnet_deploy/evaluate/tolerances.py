"""The one tolerance table: what each precision must reach against the Keras fp32 reference.

Every number carries its reason. A breach of any of them fails the run (non-zero exit); none
is ever downgraded to a warning. The CLI can override single entries (`--tol int8.cosine_min=0.97`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

from resnet_deploy.config import Precision
from resnet_deploy.errors import InputError


@dataclass(frozen=True)
class Tolerance:
    """Limits for one precision. None means "not checked for this precision".

    max_abs_rel:   max |out - ref| divided by max |ref|: scale-free, so it holds for logits
                   and for the seed model's raw feature maps alike.
    cosine_min:    cosine similarity of the flattened outputs.
    sqnr_min_db:   10*log10(sum ref^2 / sum (out-ref)^2).
    top1_min:      fraction of samples whose argmax agrees with the reference (classifiers).
    acc_drop_max:  task-accuracy drop in percentage points vs the reference (labelled data).
    """

    max_abs_rel: float | None = None
    cosine_min: float | None = None
    sqnr_min_db: float | None = None
    top1_min: float | None = None
    acc_drop_max: float | None = None


TOLERANCES: dict[Precision, Tolerance] = {
    # fp32: the same maths in a different summation order (XNNPACK, MLAS, oneDNN block the
    # reductions differently). fp32 eps is 1.2e-7; a 3x3x512 conv sums 4608 terms and ResNet-50
    # chains ~50 of them, so ~1e-6 relative drift is expected. Measured: <=2.5e-6 on seed and
    # resnet18 (TFLite). 1e-4 leaves 40x headroom yet catches any real bug (a wrong layout or
    # a bf16 execution is 1e-2 or worse). cosine >= 0.99999: silent bf16 gives 0.97-0.98.
    Precision.FP32: Tolerance(max_abs_rel=1e-4, cosine_min=0.99999, sqnr_min_db=60.0, top1_min=0.99, acc_drop_max=0.5),
    # fp16 weights: each weight rounds with relative error <= 2^-11 (4.9e-4); measured max
    # relative output error 4e-4 and cosine 0.9999996 on seed/resnet18. 1e-2 / 0.9999 / 40 dB
    # allow for fp16 activations on runtimes that compute in half precision.
    Precision.FP16: Tolerance(max_abs_rel=1e-2, cosine_min=0.9999, sqnr_min_db=40.0, top1_min=0.98, acc_drop_max=1.0),
    # bf16 execution (fp32 weights; OpenVINO computes in bf16, an 8-bit mantissa: each product
    # rounds with relative error <= 2^-9). Measured against Keras on this CPU (AMD EPYC, AVX512-BF16;
    # `parity --targets openvino --precision bf16`): digits (trained, 450 test images) max rel
    # error 1.2e-2, cosine 0.99995, SQNR 39.4 dB, top-1 agreement 1.0, accuracy unchanged;
    # keras:ResNet50 (untrained, 64 synthetic images) 1.2e-3, 0.9999999, 65.5 dB. The limits leave
    # 4x on the error, 20x on 1-cosine and 9 dB; a wrong layout or scale gives cosine < 0.9.
    Precision.BF16: Tolerance(max_abs_rel=5e-2, cosine_min=0.999, sqnr_min_db=30.0, top1_min=0.98, acc_drop_max=1.0),
    # dynamic range: int8 weights (per-channel), float activations. Measured max relative error
    # 1.4e-2 and cosine 0.99995 on seed/resnet18; int8 weight rounding is 1/254 of each
    # channel's range, compounding over depth.
    Precision.DYNAMIC: Tolerance(max_abs_rel=5e-2, cosine_min=0.999, sqnr_min_db=25.0, top1_min=0.97, acc_drop_max=2.0),
    # int8: activations quantized too, so single logits can move by several quantization steps;
    # a max-abs bound would only measure the step size. Judged on a trained model over real
    # images: the mission's bar is task accuracy within 2 points; top-1 agreement >= 0.95 and
    # cosine >= 0.98 catch a broken quantizer (a wrong scale or zero point gives cosine < 0.9).
    Precision.INT8: Tolerance(cosine_min=0.98, sqnr_min_db=12.0, top1_min=0.95, acc_drop_max=2.0),
}


# An untrained model's outputs are near-uniform: which class wins flips with any noise, so top-1
# agreement measures nothing there and its task accuracy is chance. Its output error, cosine and SQNR
# still judge the conversion.
NOT_JUDGED_UNTRAINED = ("top1_min", "acc_drop_max")
UNTRAINED_NOTE = (
    "top-1 agreement and accuracy are not judged: an untrained model's outputs are near-uniform, so which "
    "class wins is noise; output error, cosine and SQNR judge it"
)


def judged(tol: Tolerance, trained: bool) -> Tolerance:
    """The limits that mean something for this reference (all of them for a trained model)."""
    return tol if trained else replace(tol, **{k: None for k in NOT_JUDGED_UNTRAINED})


def tolerance_for(
    precision: Precision | str, overrides: dict[str, float] | None = None, trained: bool = True
) -> Tolerance:
    """The table's entry for a precision, judged as the reference allows (`judged`), with optional
    {field: value} overrides (a limit the user names is always checked)."""
    tol = judged(TOLERANCES[Precision.parse(precision)], trained)
    if overrides:
        names = {f.name for f in fields(Tolerance)}
        bad = [k for k in overrides if k not in names]
        if bad:
            raise InputError(f"Unknown tolerance field(s) {bad}. Known: {', '.join(sorted(names))}.")
        tol = replace(tol, **overrides)
    return tol


def parse_overrides(items: list[str]) -> dict[Precision, dict[str, float]]:
    """['int8.cosine_min=0.97', 'fp32.max_abs_rel=1e-3'] -> {INT8: {...}, FP32: {...}}."""
    out: dict[Precision, dict[str, float]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        prec, dot, name = key.partition(".")
        if not sep or not dot:
            raise InputError(f"Tolerance override {item!r} is not PRECISION.FIELD=VALUE, e.g. int8.cosine_min=0.97.")
        try:
            v = float(value)
        except ValueError:
            raise InputError(f"Tolerance override {item!r}: {value!r} is not a number.") from None
        if not math.isfinite(v):
            raise InputError(f"Tolerance override {item!r}: the limit must be a finite number.")
        out.setdefault(Precision.parse(prec), {})[name] = v
    for p, ov in out.items():
        tolerance_for(p, ov)  # validates the field names
    return out
