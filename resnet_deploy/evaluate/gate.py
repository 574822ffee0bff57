"""A regression gate for CI: this run against the last good one.

A gate record is what one run says about each backend/precision: accuracy, top-1 agreement and
SQNR against Keras (parity), and latency as a ratio measured within that run: the artifact's p50
over the Keras p50 at the same threads and batch (bench). Milliseconds are never compared
across runs: CI machines change CPU between runs, and a ratio measured side by side in one run
survives that where absolute numbers do not. `gate` compares the current record with the
baseline; any drop beyond GATE_TOLERANCES fails it (exit 5), and only a passing run may become
the new baseline (`--update-baseline`, written atomically).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resnet_deploy.errors import InputError, ParityError
from resnet_deploy.store.record import Record

RECORD_KIND, RECORD_VERSION = "resnet-deploy gate record", 1

# What may get worse between two runs before the gate fails, and why that number.
GATE_TOLERANCES: dict[str, tuple[float, str]] = {
    "accuracy": (0.5, "points of task accuracy: about 2 of the 450 digits test images; less is sampling noise"),
    "top1_agreement": (1.0, "points of top-1 agreement with Keras: 4-5 of 450 decisions may flip near a tie"),
    "sqnr_db": (1.0, "dB of SQNR: re-quantizing the same model moves it by tenths of a dB, a real loss by several"),
    "latency_ratio": (
        15.0,
        "% slower relative to Keras in the same run; a lost fusion or a float fallback costs far "
        "more (ORT S8S8 vs U8S8 on digits: +127%). On a 2-vCPU VM a sub-millisecond model's ratio "
        "moved 0.082-0.128 between same-build runs: raise it for such models",
    ),
}


class RegressionError(ParityError):
    """The current run is worse than the baseline beyond the gate's tolerances."""

    markdown = ""  # the comparison table, for the CLI to print before the one-line error


def record(parity: dict, bench: dict) -> dict[str, Any]:
    """The gate record of one run, from its parity and bench results."""
    if parity["model"] != bench["model"]:
        raise InputError(
            f"the parity results are for {parity['model']!r} and the bench results for "
            f"{bench['model']!r}; run both on the same model."
        )
    keras = {(r["threads"], r["batch"]): r["p50"] for r in bench["rows"] if r["backend"] == "keras"}
    if not keras:
        raise InputError(
            "the bench results have no Keras row to take latency ratios against; run `bench` with "
            "--keras (the default)."
        )
    ratios: dict[str, float] = {}
    for r in bench["rows"]:
        base = keras.get((r["threads"], r["batch"]))
        if r["backend"] != "keras" and base:
            ratios.setdefault(f"{r['backend']}/{r['precision']}", r["p50"] / base)
    entries = {}
    for res in parity["results"]:
        m = res["metrics"]
        entries[res["name"]] = {
            "accuracy": m.get("accuracy"),
            "top1_agreement": m.get("top1_agreement"),
            "sqnr_db": m.get("sqnr_db"),
            "latency_ratio": ratios.get(res["name"]),
            "parity_ok": res.get("ok", True),
        }
    return {
        "kind": RECORD_KIND,
        "schema_version": RECORD_VERSION,
        "model": parity["model"],
        "data": parity.get("data", {}).get("source"),
        "samples": parity["samples"],
        "entries": entries,
        "cpu": (bench.get("environment") or {}).get("cpu", {}).get("model"),
        "utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def check_comparable(base: dict, cur: dict, base_path: Path) -> None:
    """One line if the two records cannot be compared."""
    if base.get("kind") != RECORD_KIND or base.get("schema_version") != RECORD_VERSION:
        raise InputError(
            f"{str(base_path)!r} is not a resnet-deploy gate record of schema version {RECORD_VERSION} "
            f"(found {base.get('kind')!r} version {base.get('schema_version')!r}); make a new baseline "
            "with `gate --baseline FILE --update-baseline`."
        )
    for key, what in (("model", "model"), ("data", "evaluation data")):
        if base.get(key) != cur.get(key):
            raise InputError(
                f"the baseline {str(base_path)!r} was made for {what} {base.get(key)!r}, this run for "
                f"{cur.get(key)!r}; compare like with like, or make a new baseline with --update-baseline."
            )


def compare(base: dict, cur: dict, limits: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """One row per backend/precision and metric: baseline, current, change, limit, ok."""
    limits = {k: v for k, (v, _) in GATE_TOLERANCES.items()} | (limits or {})
    rows = []
    for name, b in base["entries"].items():
        c = cur["entries"].get(name)
        if c is None:
            rows.append(
                {
                    "entry": name,
                    "metric": "present",
                    "base": 1,
                    "current": 0,
                    "change": None,
                    "limit": "must be measured",
                    "ok": False,
                }
            )
            continue
        for metric in ("accuracy", "top1_agreement", "sqnr_db", "latency_ratio"):
            if b.get(metric) is None or c.get(metric) is None:
                continue
            # rounded to 1e-9 (of a point, a dB, a %): a change of exactly the limit is not a breach by float
            # noise (100 * (0.945 - 0.95) is -0.5000000000000004)
            if metric == "latency_ratio":
                change = round(100.0 * (c[metric] / b[metric] - 1.0), 9)  # % slower
                ok = change <= limits[metric]
            else:
                scale = 100.0 if metric != "sqnr_db" else 1.0  # fractions -> points
                change = round(scale * (c[metric] - b[metric]), 9)
                ok = -change <= limits[metric]
            rows.append(
                {
                    "entry": name,
                    "metric": metric,
                    "base": b[metric],
                    "current": c[metric],
                    "change": change,
                    "limit": limits[metric],
                    "ok": ok,
                }
            )
        if not c.get("parity_ok", True):
            rows.append(
                {
                    "entry": name,
                    "metric": "parity",
                    "base": True,
                    "current": False,
                    "change": None,
                    "limit": "tolerance table",
                    "ok": False,
                }
            )
    return rows


def markdown(rows: list[dict], base: dict, cur: dict) -> str:
    units = {"accuracy": "pts", "top1_agreement": "pts", "sqnr_db": "dB", "latency_ratio": "% slower"}
    lines = [
        f"### Regression gate: {cur['model']} (baseline {base.get('utc')} on {base.get('cpu')}; this run "
        f"{cur.get('utc')} on {cur.get('cpu')}): {'PASS' if all(r['ok'] for r in rows) else 'FAIL'}",
        "",
        "| backend | metric | baseline | current | change | limit | result |",
        "|---|---|---|---|---|---|---|",
    ]

    def fmt(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    for r in rows:
        change = "-" if r["change"] is None else f"{r['change']:+.2f} {units.get(r['metric'], '')}"
        lines.append(
            f"| {r['entry']} | {r['metric']} | {fmt(r['base'])} | {fmt(r['current'])} | {change} | "
            f"{r['limit']} | {'ok' if r['ok'] else 'FAIL'} |"
        )
    return "\n".join(lines) + "\n"


def _read_record(path: Path, what: str) -> dict:
    from resnet_deploy.store.schemas import read_checked

    try:
        return read_checked(path, "gate", "make a new one with `gate --baseline FILE --update-baseline`")
    except FileNotFoundError:
        raise InputError(
            f"{what} {str(path)!r} does not exist; make one with `gate --baseline {path} --update-baseline`."
        ) from None


def current_record(req: Any, progress: Any) -> dict:
    """This run's record: --current FILE, or parity and bench run now with the request's options."""
    if req.current is not None:
        return _read_record(req.current, "the current record")
    from resnet_deploy.measure.bench import run_bench
    from resnet_deploy.evaluate.parity_run import run_parity
    from resnet_deploy.requests import BenchRequest, ParityRequest

    report = run_parity(
        ParityRequest(req.model, req.targets, req.precisions, req.data, req.n, req.threads, req.options, req.out),
        progress,
    )
    bench = run_bench(
        BenchRequest(
            req.model, req.targets, req.precisions, (req.threads,), (1,), True, req.protocol, req.options, req.out
        ),
        progress,
    )
    return record(report.to_dict(), bench.to_dict())


@dataclass(frozen=True)
class GateResult(Record):
    """This run against the baseline: one row per entry and metric (empty on the first run), this
    run's record, and the table as Markdown."""

    ok: bool
    baseline: str
    rows: list[dict[str, Any]]
    current: dict[str, Any]
    markdown: str


def run_gate(req: Any, progress: Any = None) -> GateResult:
    """The `gate` command: compare, write OUT/<model>/gate-record.json, gate.json and gate.md, and with
    --update-baseline make a passing run (or the first one) the baseline. Raises RegressionError
    (exit 5) on a regression, after writing what it found."""
    from resnet_deploy.store.fsutil import write_json_atomic, write_text_atomic
    from resnet_deploy.progress import Progress
    from resnet_deploy.store.workspace import Workspace

    progress = progress or Progress()
    first = req.update_baseline and not Path(req.baseline).exists()
    base = None if first else _read_record(req.baseline, "the baseline")
    cur = current_record(req, progress)
    rows: list[dict] = []
    if base is not None:
        check_comparable(base, cur, Path(req.baseline))
        rows = compare(base, cur, req.limits)
    result = GateResult(
        all(r["ok"] for r in rows),
        str(req.baseline),
        rows,
        cur,
        markdown(rows, base, cur)
        if base is not None
        else f"### Regression gate: {cur['model']}: first run, baseline written to {req.baseline}\n",
    )
    ws = Workspace(req.out)
    write_json_atomic(ws.result(cur["model"], "gate-record"), cur)  # this run's record: a later --current or --baseline
    write_json_atomic(ws.result(cur["model"], "gate"), result.to_dict())
    write_text_atomic(ws.result(cur["model"], "gate-md"), result.markdown)
    if not result.ok:
        bad = [f"{r['entry']} {r['metric']}" for r in rows if not r["ok"]]
        err = RegressionError(
            f"regression against {str(req.baseline)!r}: {', '.join(bad)} (see "
            f"{ws.result(cur['model'], 'gate-md')}); the baseline is unchanged."
        )
        err.markdown = result.markdown
        raise err
    if req.update_baseline:
        write_json_atomic(Path(req.baseline), cur)
        progress.log(f"baseline {'written' if first else 'updated'}: {req.baseline}")
    return result
