"""Export time and memory per step, before and after, side by side in one run.

    python benchmarks/export_speed.py [--model resnet50] [--input-size 224] [--target all] [--repeats 2]
    python benchmarks/export_speed.py --before-rev REV    # "before" = this tree at git revision REV

Saves the model as a .keras file once, then runs `cli.py export --precision int8` (default
calibration size, synthetic calibration) in fresh processes, alternating the configurations so
that the machine's noise hits both: "before" = every escape hatch set (tf2onnx's own optimizer
loop, TF's TFLite calibrator, ORT's unoptimised calibration session), "after" = the default;
with --before-rev, "before" is the code at that git revision (a temporary worktree) instead. Wall time of every progress step comes
from the CLI's own step lines; memory is the peak of the summed RSS and PSS of the export process
and its children, sampled every 0.2 s (PSS counts shared library pages once).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STEP = re.compile(r"✓ (.+?) \(([\d.]+) s\)")
CONFIGS = {
    "before (the converters' own: tf2onnx loop, TF calibrator, ORT session)": {
        "RESNET_DEPLOY_TF2ONNX_LEAN": "0",
        "RESNET_DEPLOY_TFLITE_CALIBRATOR": "tf",
        "RESNET_DEPLOY_ORT_CALIBRATION": "ort",
    },
    "after": {},
}


def _tree(root: int) -> set[int]:
    parents = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                parents[int(p)] = int(Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    kids, grew = {root}, True
    while grew:
        new = {p for p, pp in parents.items() if pp in kids} - kids
        kids |= new
        grew = bool(new)
    return kids


def _sample(pid: int, peak: dict, done: threading.Event) -> None:
    while not done.is_set():
        rss = pss = 0
        for p in _tree(pid):
            try:
                for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                    key, value = line.split(":", 1)
                    if key in ("Rss", "Pss"):
                        kb = int(value.split()[0])
                        rss, pss = (rss + kb, pss) if key == "Rss" else (rss, pss + kb)
            except (OSError, ValueError):
                pass
        peak["rss"], peak["pss"] = max(peak["rss"], rss), max(peak["pss"], pss)
        time.sleep(0.2)


def run_export(model: Path, target: str, out: Path, env: dict) -> dict:
    env = dict(env)
    root = Path(env.pop("_ROOT", ROOT))
    cmd = [
        sys.executable,
        str(root / "cli.py"),
        "export",
        "--model",
        str(model),
        "--target",
        target,
        "--precision",
        "int8",
        "--calib",
        "synthetic",
        "--out",
        str(out),
    ]
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env, "COLUMNS": "200", "PYTHONPATH": str(root)},
        cwd=root,
    )
    peak, done = {"rss": 0, "pss": 0}, threading.Event()
    sampler = threading.Thread(target=_sample, args=(proc.pid, peak, done), daemon=True)
    sampler.start()
    _, err = proc.communicate()
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"export failed ({proc.returncode}): {err.strip().splitlines()[-1:]}")
    steps = {m.group(1).replace(model.stem, "MODEL"): float(m.group(2)) for m in STEP.finditer(err)}
    return {
        "wall": time.perf_counter() - t0,
        "steps": steps,
        "rss_mb": peak["rss"] / 1024,
        "pss_mb": peak["pss"] / 1024,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet50")
    p.add_argument("--input-size", type=int, default=224)
    p.add_argument("--target", default="all")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--before-rev", default=None, help="compare with the code at this git revision")
    args = p.parse_args()
    configs = dict(CONFIGS)
    if args.before_rev:
        tree = Path(tempfile.mkdtemp(prefix="rd-before-"))
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), args.before_rev],
            check=True,
            capture_output=True,
        )
        configs = {f"before ({args.before_rev})": {"_ROOT": str(tree)}, "after": {}}
    from resnet_deploy.backend.cpu import cpu_info
    from resnet_deploy.models.source import load_model

    with tempfile.TemporaryDirectory() as tmp:
        keras_file = Path(tmp) / f"{args.model}.keras"
        load_model(args.model, input_size=args.input_size)[1].save(keras_file)
        runs: dict[str, list[dict]] = {name: [] for name in configs}
        for i in range(args.repeats):
            for j, (name, env) in enumerate(configs.items()):
                print(f"[{i + 1}/{args.repeats}] {name} ...", file=sys.stderr, flush=True)
                runs[name].append(run_export(keras_file, args.target, Path(tmp) / f"out-{i}-{j}", env))
    if args.before_rev:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
    cpu = cpu_info()
    print(
        f"### export --target {args.target} --precision int8, {args.model} @{args.input_size} (.keras file, "
        f"200 synthetic calibration samples), {cpu.get('model', '?')}, {os.cpu_count()} cores; "
        f"seconds per step, every run shown (run 1 / run 2 ...)\n"
    )
    names = list(configs)
    steps = list(dict.fromkeys(s for n in reversed(names) for r in runs[n] for s in r["steps"]))  # every config's
    print("| step | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    fmt = lambda vals: " / ".join(f"{v:.1f}" for v in vals)  # noqa: E731
    for s in steps:
        print(f"| {s} | " + " | ".join(fmt([r["steps"].get(s, float("nan")) for r in runs[n]]) for n in names) + " |")
    for key, label in (
        ("wall", "wall s (process)"),
        ("rss_mb", "peak RSS MB (process tree)"),
        ("pss_mb", "peak PSS MB (process tree)"),
    ):
        print(f"| **{label}** | " + " | ".join(fmt([r[key] for r in runs[n]]) for n in names) + " |")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from results import recorded

    with recorded("export_speed"):
        main()
