"""Evaluation at real size: parity of ResNet-50 int8 on all three backends and the Keras reference,
on a JPEG folder made here (1000 classes of transformed real photos, seeded), at several sample
counts, each in a fresh process.

    python benchmarks/evaluation_scale.py [--images 50000] [--counts 500,5000] [--input-size 224]

Prints, per count: wall time and the process's peak memory; per backend (and Keras): images/s in
parity next to `bench --mode throughput` on the same artifact, and the wall time projected for all
--images samples. The folder is made once under --work (50,000 JPEGs at 224x224 take ~0.9 GB).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUN = """
import json, resource, sys, time
from resnet_deploy.cli.main import main
t0 = time.perf_counter()
try:
    main(sys.argv[1:])
except SystemExit as e:
    code = e.code or 0
else:
    code = 0
print(json.dumps({"code": code, "seconds": time.perf_counter() - t0,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}), file=sys.stderr)
"""


def make_folder(root: Path, images: int, size: int, seed: int = 0) -> Path:
    """`images` JPEGs in up to 1000 class folders: crops of scikit-learn's two photos, each class its
    own crop box, flip and colour shift, each image jittered with the seed."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_sample_images

    folder = root / f"jpeg-{images}-{size}"
    if (folder / ".done").is_file():
        return folder
    photos = [Image.fromarray(p) for p in load_sample_images().images]
    rng = np.random.default_rng(seed)
    classes = min(1000, images)
    for i in range(images):
        c = i % classes
        crng = np.random.default_rng(c)
        photo = photos[c % 2]
        w, h = photo.size
        s = int(crng.integers(h // 3, h))
        x0, y0 = int(crng.integers(0, w - s)) + int(rng.integers(0, 8)), int(crng.integers(0, h - s))
        im = photo.crop((x0, y0, x0 + s, y0 + s)).resize((size, size))
        arr = np.asarray(im, np.int16) + crng.integers(-40, 40, 3) + rng.integers(-6, 6, (size, size, 3))
        d = folder / f"c{c:04d}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(d / f"{i:06d}.jpg", quality=90)
    (folder / ".done").write_text("ok\n")
    return folder


def run(args: list[str]) -> tuple[dict, dict]:
    proc = subprocess.run([sys.executable, "-c", RUN, *args], cwd=ROOT, capture_output=True, text=True)
    facts = json.loads(proc.stderr.strip().splitlines()[-1])
    try:
        return json.loads(proc.stdout), facts
    except json.JSONDecodeError:
        raise SystemExit(f"{' '.join(args[:1])} failed: {proc.stderr[-600:]}") from None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=50_000)
    p.add_argument("--counts", default="500,5000")
    p.add_argument("--input-size", type=int, default=224)
    p.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "out" / "scale")
    a = p.parse_args()
    t0 = time.perf_counter()
    folder = make_folder(a.work, a.images, a.input_size)
    print(f"data: {folder} ({a.images} JPEGs, made or reused in {time.perf_counter() - t0:.0f} s)")
    model = ["--model", "keras:ResNet50", "--input-size", str(a.input_size), "--out", str(a.work / "ws")]
    rates = {}
    for batch in ("1", "32"):  # backends as parity drives them (one sample a request); Keras batched
        bench, _ = run(
            [
                "bench",
                *model,
                "--targets",
                "all",
                "--precision",
                "int8",
                "--mode",
                "throughput",
                "--batch",
                batch,
                "--json",
            ]
        )
        for r in bench["rows"]:
            key = "keras" if r["backend"] == "keras" else f"{r['backend']}/{r['precision']}"
            if (key == "keras") == (batch == "32"):
                rates[key] = r["throughput"]
    print(f"bench --mode throughput (images/s; Keras at batch 32): {json.dumps(rates)}")
    print("| samples | wall s | peak MB | backend | parity images/s | bench images/s | ratio | projected for all |")
    print("|---|---|---|---|---|---|---|---|")
    for n in map(int, a.counts.split(",")):
        common = ["--data", str(folder), "--n", str(n), "--allow-low-accuracy", "--json"]
        rep, facts = run(["parity", *model, *common, "--targets", "all", "--precision", "int8"])
        rows = [("keras", rep["reference"].get("images_per_s"), rates.get("keras"))]
        rows += [(r["name"], r["runtime"].get("images_per_s"), rates.get(r["name"])) for r in rep["results"]]
        for name, ips, ref in rows:
            ratio = f"{ips / ref:.2f}" if ips and ref else "-"
            projected = f"{a.images / ips / 60:.1f} min" if ips else "-"
            print(
                f"| {n} | {facts['seconds']:.0f} | {facts['peak_mb']:.0f} | {name} | {ips} | "
                f"{ref and round(ref, 1)} | {ratio} | {projected} |"
            )


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from results import recorded

    with recorded("evaluation_scale"):
        main()
