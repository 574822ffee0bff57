"""The report's first screen: per artifact the verdict, accuracy against Keras, agreement, speed-up,
p50, size and the precision it actually ran in; above it the machine, versions and date. Built
from the parity and bench results (either may be missing)."""

from __future__ import annotations

from typing import Any

from resnet_deploy.evaluate.parity import ran_in, verdict
from resnet_deploy.reporting.doc import Section, Table


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v * 100:.2f}%"


def _best(bench: dict | None, name: str) -> dict | None:
    """The artifact's fastest bench row (its best thread count)."""
    backend, _, precision = name.partition("/")
    rows = [r for r in (bench or {}).get("rows", []) if r["backend"] == backend and r["precision"] == precision]
    return min(rows, key=lambda r: r["p50"]) if rows else None


def _row(name: str, res: dict | None, row: dict | None) -> list[str]:
    m = (res or {}).get("metrics") or {}
    ran = (res or {}).get("runtime", {})
    acc = "-"
    if m.get("accuracy") is not None:
        acc = (
            f"{_pct(m['accuracy'])} ({0 - m['acc_drop']:+.2f} pts vs Keras)"
            if m.get("acc_drop") is not None
            else _pct(m["accuracy"])
        )
    speed = f"{row['speedup_vs_keras']:.2f}x" if row and row.get("speedup_vs_keras") else "-"
    return [
        name,
        verdict(res) if res else "not in parity",
        acc,
        _pct(m.get("top1_agreement")),
        speed,
        f"{row['p50']:.2f}" if row else "-",
        f"{row['size_mb']:.2f}" if row else "-",
        ran_in(name.partition("/")[2], ran),
    ]


def summary_section(results: dict[str, dict | None]) -> Section:
    parity, bench = results.get("parity"), results.get("bench")
    by_name = {r["name"]: r for r in (parity or {}).get("results", [])}
    names = list(by_name) + [
        f"{r['backend']}/{r['precision']}"
        for r in (bench or {}).get("rows", [])
        if r["backend"] != "keras" and f"{r['backend']}/{r['precision']}" not in by_name
    ]
    table = Table(
        ["artifact", "verdict", "accuracy (vs Keras)", "top-1 agreement", "speed-up", "p50 ms", "size MB", "ran in"],
        [_row(n, by_name.get(n), _best(bench, n)) for n in dict.fromkeys(names)],
    )
    lines: list[Any] = [_headline(parity, by_name)]
    ref = (parity or {}).get("reference", {})
    if ref.get("trained") is False or (bench or {}).get("trained") is False:
        lines.append(
            "UNTRAINED model (random weights): speed only. Top-1 agreement on its near-uniform outputs is noise."
        )
    keras = _best(bench, "keras/fp32")
    if parity and parity["results"] and parity["results"][0]["metrics"].get("ref_accuracy") is not None:
        lines.append(f"Keras fp32 accuracy {_pct(parity['results'][0]['metrics']['ref_accuracy'])}.")
    if keras:
        lines.append(f"Keras fp32 p50 {keras['p50']:.2f} ms at {keras['threads']} thread(s): speed-ups are over it.")
    return Section("Summary", [*lines, table])


def _headline(parity: dict | None, by_name: dict) -> str:
    if not parity:
        return "No parity result: accuracy not checked (run `parity`)."
    failed = [n for n, r in by_name.items() if not r["ok"]]
    if not failed:
        return f"PASS: all {len(by_name)} artifacts match Keras on {parity['samples']} samples."
    return f"FAIL: {len(failed)} of {len(by_name)} artifacts do not match Keras: {', '.join(failed)}."


def machine_line(results: dict[str, dict | None]) -> str:
    """CPU, versions and the result files' own dates (each command records when it ran)."""
    env: dict = next((r["environment"] for r in results.values() if r and r.get("environment")), {})
    cpu = env.get("cpu", {})
    feats = ", ".join(k for k, v in cpu.get("features", {}).items() if v) or "none"
    versions = ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items())
    return f"Machine: {cpu.get('model', '?')} ({cpu.get('arch', '?')}; {feats})" + (
        f". Versions: {versions}" if versions else ""
    )


def matrix_section(result: dict[str, Any]) -> Section:
    """The matrix command's one table: every model x target x precision."""
    table = Table(
        [
            "model",
            "artifact",
            "verdict",
            "accuracy (vs Keras)",
            "top-1 agreement",
            "speed-up",
            "p50 ms",
            "size MB",
            "ran in",
        ]
    )
    for r in result["rows"]:
        acc = "-"
        if r.get("accuracy") is not None:
            drop = (
                f" ({100 * (r['accuracy'] - r['keras_accuracy']):+.2f} pts vs Keras)"
                if r.get("keras_accuracy") is not None
                else ""
            )
            acc = _pct(r["accuracy"]) + drop
        table.rows.append(
            [
                r["model"],
                f"{r['target']}/{r['precision']}",
                r["verdict"],
                acc,
                _pct(r.get("top1_agreement")),
                f"{r['speedup']:.2f}x" if r.get("speedup") else "-",
                f"{r['p50_ms']:.2f}" if r.get("p50_ms") is not None else "-",
                f"{r['size_mb']:.2f}" if r.get("size_mb") is not None else "-",
                r.get("ran_in") or "-",
            ]
        )
    models = "; ".join(
        f"{m}: {f['samples']} samples, Keras fp32 p50 {f['keras_p50_ms']:.2f} ms"
        + ("" if f.get("trained") else " (UNTRAINED: speed only, agreement not judged)")
        for m, f in result["models"].items()
        if f.get("keras_p50_ms") is not None
    )
    failed = [f"{r['model']} {r['target']}/{r['precision']}" for r in result["rows"] if r["verdict"] != "pass"]
    head = (
        f"PASS: all {len(result['rows'])} cells." if not failed else f"FAIL: {len(failed)} cells: {', '.join(failed)}."
    )
    return Section("Matrix: models x targets x precisions", [head, models + ".", table])
