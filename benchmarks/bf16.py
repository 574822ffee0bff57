"""fp32 vs bf16 vs int8 on OpenVINO, side by side in one run on this CPU: ResNet-50's p50 latency
and throughput, and accuracy on the digits test split (the trained model).

    python benchmarks/bf16.py [--input-size 224] [--threads 2]

bf16 is real only on CPUs with AVX512-BF16 or AMX-BF16: elsewhere its rows say it was refused
(the refusal is what a user gets). Each measurement is resnet-deploy's own command, in fresh
processes (`bench`, `bench --mode throughput`, `parity`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str) -> tuple[int, dict | None, str]:
    proc = subprocess.run([sys.executable, str(ROOT / "cli.py"), *args, "--json"], capture_output=True, text=True)
    try:
        return proc.returncode, json.loads(proc.stdout), proc.stderr
    except json.JSONDecodeError:
        return proc.returncode, None, proc.stderr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input-size", default="224")
    ap.add_argument("--threads", default="2")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "bf16")
    a = ap.parse_args()
    r50 = ["--model", "keras:ResNet50", "--input-size", a.input_size, "--out", str(a.out), "--targets", "openvino"]
    rows: dict[str, dict] = {p: {} for p in ("fp32", "bf16", "int8")}
    for p in rows:
        for mode in ("latency", "throughput"):
            code, res, err = cli("bench", *r50, "--precision", p, "--mode", mode, "--threads", a.threads)
            if res is None:
                rows[p][mode] = f"refused: {err.strip().splitlines()[-1][:90]}"
                continue
            row = next(r for r in res["rows"] if r["backend"] == "openvino")
            rows[p][mode] = f"{row['p50']:.1f} ms" if mode == "latency" else f"{row['throughput']:.1f}/s"
            rows[p]["ran in"] = row.get("runtime", {}).get("inference_precision", "-")
        code, res, err = cli("parity", "--targets", "openvino", "--precision", p, "--out", str(a.out / "digits"))
        if res is None:
            rows[p]["digits"] = f"refused: {err.strip().splitlines()[-1][:90]}"
        else:
            m = res["results"][0]["metrics"]
            rows[p]["digits"] = (
                f"{100 * m['accuracy']:.2f}% (Keras {100 * m['ref_accuracy']:.2f}%), SQNR {m['sqnr_db']:.1f} dB"
            )
    from resnet_deploy.backend.cpu import cpu_info

    print(f"\nOpenVINO on {cpu_info()['model']}, {a.threads} threads; ResNet-50 @{a.input_size}, batch 1\n")
    print("| precision | ran in | p50 | throughput | digits test accuracy (450 images) |\n|---|---|---|---|---|")
    for p, r in rows.items():
        print(f"| {p} | {r.get('ran in', '-')} | {r.get('latency')} | {r.get('throughput')} | {r.get('digits')} |")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from results import recorded

    with recorded("bf16"):
        main()
