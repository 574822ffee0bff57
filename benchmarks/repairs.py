"""int8 repairs against plain int8 and the float fallback: accuracy and p50 per backend and model.

    python benchmarks/repairs.py [--cases digits-outlier,holdout-outlier,holdout-blocked,resnet18,resnet50]
                                 [--rounds 2] [--out benchmarks/out/repairs]

For each model: plain int8, `--repair cle`, `--repair cle,bias-correction` and (trained models)
the accuracy budget `--max-acc-drop 1 --val digits`, each exported to all three backends and run
through `parity` (trained: the digits test split, 450 images; untrained ResNets: synthetic
inputs, where agreement and SQNR are what counts), then `bench` of every mode's int8 artifacts in
rounds (plain, cle, cle+bc, budget, then again), each artifact in its own process as `bench`
does: the p50 ratio to plain int8 is the median over rounds, from one run of this script.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGETS = ("tflite", "onnx", "openvino")
MODES = {"plain": [], "cle": ["--repair", "cle"], "cle+bc": ["--repair", "cle,bias-correction"]}


def _model_args(case: str, folder: Path) -> tuple[list[str], list[str], bool]:
    """(model flags, data flags, trained) for one case, saving the fixtures it needs."""
    if case in ("resnet18", "resnet50"):
        return ["--model", case, "--input-size", "224"], ["--data", "synthetic", "--n", "50"], False
    from tests.support import holdout, outlier

    path = folder / f"{case}.keras"
    if not path.exists():
        if case == "digits-outlier":
            outlier.save(path)
        else:
            holdout.save(path, flatten=case == "holdout-blocked")
    return ["--model", str(path), "--calib", "digits"], ["--data", "digits", "--n", "450"], True


def _cli(*args: str) -> dict:
    p = subprocess.run([sys.executable, str(ROOT / "cli.py"), *args, "--json"], capture_output=True, text=True)
    if p.returncode not in (0, 5):
        raise SystemExit(f"cli.py {' '.join(args)} failed ({p.returncode}): {p.stderr.strip()[-400:]}")
    return json.loads(p.stdout)


def _measure(case: str, folder: Path, rounds: int) -> list[dict]:
    model, data, trained = _model_args(case, folder)
    modes = dict(MODES)
    if trained:
        modes["budget"] = ["--max-acc-drop", "1", "--val", "digits"]
    rows: dict[tuple[str, str], dict] = {}
    for mode, flags in modes.items():
        out = ["--out", str(folder / mode)]
        if mode == "budget":
            _cli("export", *model, "--target", "all", *flags, *out)
            flags = []
        parity = _cli("parity", *model, "--targets", "all", "--precision", "int8", *data, *flags, *out)
        for r in parity["results"]:
            target = r["name"].split("/")[0]
            m = r["metrics"]
            rows[(target, mode)] = {
                "case": case,
                "target": target,
                "mode": mode,
                "acc_drop": m.get("acc_drop") if trained else None,
                "agreement": m["top1_agreement"],
                "sqnr_db": m["sqnr_db"],
                "p50": [],
                **_what(folder / mode, target),
            }
    for _ in range(rounds):
        for mode in modes:
            flags = [] if mode == "budget" else modes[mode]
            bench = _cli(
                "bench",
                *model,
                "--targets",
                "all",
                "--precision",
                "int8",
                "--no-keras",
                *flags,
                "--out",
                str(folder / mode),
                "--seconds",
                "2",
            )
            for r in bench["rows"]:
                rows[(r["backend"], mode)]["p50"].append(r["p50"])
    return list(rows.values())


def _what(workspace: Path, target: str) -> dict:
    """Repairs and float layers the int8 artifact carries (its manifest)."""
    found = next(workspace.glob(f"*/{target}/int8/manifest.json"))
    m = json.loads(found.read_text())
    budget = m.get("accuracy_budget") or {}
    repairs = [a["name"] for a in (m.get("repairs") or {}).get("applied", [])]
    return {"repairs": repairs, "float_layers": budget.get("float_layers", [])}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", default="digits-outlier,holdout-outlier,holdout-blocked,resnet18,resnet50")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("benchmarks/out/repairs"))
    args = p.parse_args()
    print(
        "| model | backend | int8 | repairs | float layers | acc drop pts | top-1 agreement | SQNR dB | p50 ms | p50 / plain |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for case in args.cases.split(","):
        folder = args.out / case
        folder.mkdir(parents=True, exist_ok=True)
        rows = _measure(case, folder, args.rounds)
        plain = {r["target"]: statistics.median(r["p50"]) for r in rows if r["mode"] == "plain"}
        for r in sorted(
            rows, key=lambda r: (TARGETS.index(r["target"]), list(MODES).index(r["mode"]) if r["mode"] in MODES else 9)
        ):
            p50 = statistics.median(r["p50"])
            drop = "-" if r["acc_drop"] is None else f"{r['acc_drop']:.2f}"
            print(
                f"| {case} | {r['target']} | {r['mode']} | {', '.join(r['repairs']) or '-'} | "
                f"{', '.join(r['float_layers']) or '-'} | {drop} | {100 * r['agreement']:.2f}% | {r['sqnr_db']:.1f} | "
                f"{p50:.3f} | {p50 / plain[r['target']]:.3f} |",
                flush=True,
            )


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from results import recorded

    with recorded("repairs"):
        main()
