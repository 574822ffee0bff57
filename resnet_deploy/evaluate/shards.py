"""Parity sharded over a Ray cluster: each shard (a contiguous part of the one seeded selection)
is a Ray task that loads the model and the artifacts, runs the Keras reference and every runtime
on its samples and returns its tally; the driver merges the tallies (counts and sums, exactly)
and the Keras outputs, then judges as a single process would.

Why Ray: tasks are re-run by Ray when their worker dies (`max_retries`), a result is only ever
taken from an attempt that finished, so a lost worker's shard is neither lost nor counted twice;
it runs on one machine or many with the same code (`ray start --head` / `--address`); no
scheduler of our own. Installed with the `cluster` extra.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from resnet_deploy.errors import DeployError, InputError, first_line
from resnet_deploy.progress import Progress

MAX_RETRIES = 3  # attempts of a shard after its worker died (Ray re-runs it elsewhere)


def _reachable(address: str) -> None:
    """A HOST:PORT (or ray://HOST:PORT) that nothing answers on is refused in seconds, not after
    Ray's own minutes of reconnecting."""
    import socket

    if address in ("auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"--cluster {address!r} is not HOST:PORT, ray://HOST:PORT, auto or local.")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as e:
        raise InputError(
            f"--cluster {address!r}: nothing answers there ({e.strerror or e}); start a cluster with "
            "`ray start --head` and pass its address, or pass --cluster local."
        ) from None


def connect(address: str) -> Any:
    from resnet_deploy.extras import require

    require("cluster", "parity --cluster")
    import ray

    _reachable(address)
    if ray.is_initialized():
        joined = ray.get_runtime_context().gcs_address
        if address in ("auto", "local") or address.removeprefix("ray://") == joined:
            return ray
        ray.shutdown()  # this process was on another cluster: join the one asked for
    try:
        ray.init(address=None if address == "local" else address, log_to_driver=False, include_dashboard=False)
    except (ConnectionError, ValueError, RuntimeError) as e:
        raise InputError(
            f"--cluster {address!r}: no Ray cluster to join ({first_line(e, 160)}); start one with "
            "`ray start --head`, pass its address, or pass --cluster local."
        ) from None
    return ray


def run_shard(job: dict, indices: np.ndarray) -> dict:
    """One shard, in a Ray worker: the Keras reference and every artifact on `indices`."""
    from resnet_deploy.backend.target import get_target
    from resnet_deploy.evaluate.parity import Candidate
    from resnet_deploy.evaluate.reference import StreamedReference, keras_pass, parity_set
    from resnet_deploy.evaluate.tally import Tally
    from resnet_deploy.exporting.pipeline import load
    from resnet_deploy.store.artifact import Artifact

    progress = Progress()
    loaded = load(job["model"], job["options"], progress, job["data"])
    ds = parity_set(loaded, job["data"], job["n"]).subset(indices)
    outputs, labels, info, prints = keras_pass(loaded.model, ds, job["threads"], progress)
    ref = StreamedReference(ds, labels, outputs, {}, prints)
    candidates = []
    try:
        for name, target, precision, path in job["candidates"]:
            runner = get_target(target).runner(Artifact.load(path), threads=job["threads"])
            runner.activate()
            candidates.append(Candidate(name, precision, runner, path))
        tally = Tally.of([c.name for c in candidates]).run(ref, candidates, progress)
    finally:
        for c in candidates:
            c.runner.deactivate()
    return {"outputs": outputs, "labels": labels, "keras": info, "prints": prints, "tally": tally.state()}


def split(indices: np.ndarray, shards: int) -> list[np.ndarray]:
    """Contiguous shards made of whole batches of the single-process run (BATCH samples), so each
    batch, and so each Keras output, is the one a single process computes."""
    from resnet_deploy.evaluate.reference import BATCH

    starts = np.arange(0, len(indices), BATCH)
    return [indices[part[0] : part[-1] + BATCH] for part in np.array_split(starts, shards) if len(part)]


def run_sharded(job: dict, indices: np.ndarray, address: str, shards: int | None, progress: Progress) -> dict:
    """Every shard as a Ray task (default: one per CPU of the cluster); results merged in shard order."""
    from resnet_deploy.evaluate.tally import Tally

    ray = connect(address)
    shards = shards or max(1, int(ray.cluster_resources().get("CPU", 1)))
    task = ray.remote(num_cpus=1, max_retries=MAX_RETRIES, retry_exceptions=False)(run_shard)
    parts = split(indices, shards)
    with progress.step(f"parity in {len(parts)} shards on the Ray cluster at {address}"):
        try:
            results = ray.get([task.remote(job, p) for p in parts])
        except ray.exceptions.RayTaskError as e:  # our one-line errors come back as they were raised
            cause = getattr(e, "cause", None)
            raise (
                cause if isinstance(cause, DeployError) else DeployError(f"a shard failed: {first_line(e)}")
            ) from None
    tally = Tally.from_state(results[0]["tally"])
    for r in results[1:]:
        tally.merge(Tally.from_state(r["tally"]))
    labels = None if results[0]["labels"] is None else np.concatenate([r["labels"] for r in results])
    keras = (
        np.concatenate([r["outputs"] for r in results]),
        labels,
        results[0]["keras"],
        [p for r in results for p in r["prints"]],
    )
    nodes = len({n["NodeID"] for n in ray.nodes() if n.get("Alive")})
    return {
        "tally": tally,
        "keras": keras,
        "sharding": {
            "engine": "ray",
            "address": address,
            "shards": len(parts),
            "nodes": nodes,
            "samples_per_shard": [len(p) for p in parts],
            "max_retries": MAX_RETRIES,
        },
    }
