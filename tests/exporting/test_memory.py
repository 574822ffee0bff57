"""Garbage collection during an export (resnet_deploy/exporting/memory.py): the objects alive when it starts
are out of every collection's way until it ends, and TensorFlow's import runs without collections."""

from __future__ import annotations

import gc

from resnet_deploy.exporting import memory

from resnet_deploy.exporting import pipeline
from resnet_deploy.config import ExportConfig
from resnet_deploy.store.workspace import Workspace


def _tracked(obj: object) -> bool:
    return any(o is obj for o in gc.get_objects())  # the frozen generation is not among them


def test_long_lived_freezes_what_is_alive_and_gives_it_back():
    old = [[]]
    with memory.long_lived():
        assert not _tracked(old) and gc.get_freeze_count() > 0
        young = [[]]
        young.append(young)  # a cycle made inside the block is still collected inside it
        ref_id = id(young)
        del young
        gc.collect()
        assert not any(id(o) == ref_id for o in gc.get_objects())
        with memory.long_lived():  # nested: the outer block's freeze stands
            pass
        assert not _tracked(old) and gc.get_freeze_count() > 0
    assert _tracked(old) and gc.get_freeze_count() == 0


def test_an_export_runs_with_its_starting_objects_frozen(digits_model, tmp_path, monkeypatch):
    from resnet_deploy.exporting import steps as export_steps

    frozen_at_release = []

    def watched():
        frozen_at_release.append(gc.get_freeze_count())
        memory.release()

    monkeypatch.setattr(export_steps, "release", watched)
    res = pipeline.export_model(
        pipeline.Loaded.of("digits", digits_model),
        ["onnx", "tflite"],
        ExportConfig(precision="fp32"),
        Workspace(tmp_path),
    )
    assert not res.failures and len(frozen_at_release) >= 2  # after each target (and a converter's garbage)
    assert min(frozen_at_release) > 10_000  # TF, Keras and the model: skipped by both
    assert gc.get_freeze_count() == 0


def test_collector_paused_restores_the_collector_as_it_was():
    with memory.collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with memory.collector_paused():
            pass
        assert not gc.isenabled()  # it was off before: it stays off
    finally:
        gc.enable()


def test_the_cli_process_exits_without_walking_its_objects_again():
    """The CLI registers gc.freeze for interpreter exit: a handler registered before main() runs
    after it (atexit is last-in, first-out) and finds the objects frozen."""
    import subprocess
    import sys

    script = (
        "import atexit, gc\n"
        "atexit.register(lambda: print('frozen at exit:', gc.get_freeze_count() > 0))\n"
        "from resnet_deploy.cli.main import main\n"
        "main(['--version'])\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "frozen at exit: True" in out.stdout
