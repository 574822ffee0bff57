"""Parity sharded over a real two-node Ray cluster on this machine equals the single-process run
on the same samples, also when a worker is killed in the middle of its shard."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from resnet_deploy.evaluate.parity_run import run_parity
from resnet_deploy.requests import ParityRequest

SAME = dict(n=120, targets=("tflite", "onnx"), precisions=("int8",), threads=1)


@pytest.fixture(scope="module")
def cluster():
    import ray
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": 100 << 20})
    c.add_node(num_cpus=1, object_store_memory=100 << 20)
    c.wait_for_nodes()
    yield c
    ray.shutdown()
    c.shutdown()


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    return out, run_parity(ParityRequest(**SAME, out=out)).to_dict()


def _assert_same(sharded: dict, single: dict) -> None:
    assert sharded["samples"] == single["samples"] == 120
    assert sharded["data"]["sampling"] == single["data"]["sampling"]
    assert sharded["data"]["fingerprint_sha256"] == single["data"]["fingerprint_sha256"]
    for a, b in zip(sharded["results"], single["results"]):
        assert a["name"] == b["name"] and a["ok"] == b["ok"]
        for k, v in b["metrics"].items():
            assert a["metrics"][k] == pytest.approx(v, rel=1e-9, abs=1e-12), (a["name"], k)
    for a, row in single["agreement"]["matrix"].items():
        assert sharded["agreement"]["matrix"][a] == pytest.approx(row), a


def test_sharded_parity_equals_the_single_process_run(cluster, single):
    out, expected = single
    report = run_parity(ParityRequest(**SAME, out=out, cluster=cluster.address, shards=3)).to_dict()
    _assert_same(report, expected)
    sharding = report["data"]["sharding"]
    assert sharding["engine"] == "ray" and sharding["nodes"] == 2 and sharding["shards"] == 3
    assert sum(sharding["samples_per_shard"]) == 120


def _shard_workers() -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "cmdline").read_bytes().startswith(b"ray::run_shard"):
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def test_a_worker_killed_mid_shard_has_its_shard_rerun_and_nothing_counted_twice(cluster, single):
    out, expected = single
    killed: list[int] = []

    def kill_one() -> None:
        deadline = time.time() + 120
        while time.time() < deadline and not killed:
            pids = _shard_workers()
            if pids:
                time.sleep(1.0)  # inside its shard, not before it
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
            time.sleep(0.1)

    killer = threading.Thread(target=kill_one)
    killer.start()
    report = run_parity(ParityRequest(**SAME, out=out, cluster=cluster.address, shards=2)).to_dict()
    killer.join()
    assert killed, "no shard worker was found to kill"
    _assert_same(report, expected)


def test_shards_without_a_cluster_and_a_cluster_without_its_extra_are_one_line(monkeypatch):
    from resnet_deploy.errors import BackendUnavailable, InputError
    from resnet_deploy.evaluate import shards

    with pytest.raises(InputError, match="--shards goes with --cluster"):
        ParityRequest(shards=2)
    monkeypatch.setattr("resnet_deploy.extras.find_spec", lambda name: None)
    with pytest.raises(BackendUnavailable, match=r"needs the 'cluster' extra .*pip install 'resnet-deploy\[cluster\]'"):
        shards.connect("local")


@pytest.mark.parametrize(
    "address, said",
    [
        ("127.0.0.1:1", "nothing answers there (Connection refused)"),
        ("no-port", "is not HOST:PORT, ray://HOST:PORT, auto or local"),
        ("ray://no-such-host.invalid:10001", "nothing answers there"),
    ],
)
def test_a_wrong_cluster_address_is_one_line_at_once(capsys, tmp_path, address, said):
    from tests.support.cli import run_cli

    t0 = time.time()
    code, _, err = run_cli(capsys, "parity", "--n", "20", "--cluster", address, "--out", str(tmp_path))
    assert code == 2 and err.count("error:") == 1 and said in err and "Traceback" not in err, err
    assert time.time() - t0 < 30 and not (tmp_path / "digits").exists()  # refused before any model loads
