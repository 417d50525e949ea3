"""Fault matrix: the state directory's disk is full (a small tmpfs mounted by the test; needs root, as in CI).
Each test's docstring is its row in docs/faults.md (tests/fault_matrix.py)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from maskgate.edge.config import Config
from maskgate.edge.events import EventStore
from maskgate.edge.sources import open_source

from conftest import REQUIRE_TOOLS
from fault_helpers import kinds
from test_gate import make_gate, relay_states, visit_clip  # noqa: F401 - visit_clip is a fixture (factory: conftest)


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs at tmp_path/state, unmounted at teardown."""
    if os.geteuid() != 0:
        if REQUIRE_TOOLS:
            pytest.fail("the full-disk test mounts a tmpfs and needs root (CI runs as root)")
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "state"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder) -> "os.PathLike":
    """Write a file until the disk says ENOSPC; returns it (delete it to free the space)."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    return filler


def test_a_full_disk_keeps_the_gate_deciding_with_one_storage_fault_and_writing_resumes(
        small_disk, visit_clip, factory, tmp_path):
    """Fault: the state directory's disk is full.
    Injected: a 1 MiB tmpfs holds the event database; a file fills it once the gate has started; it is deleted
    after the unmasked visitor's denial; then the gate is started again on the full disk.
    Outcome: the masked visitor is let in and the unmasked one denied while the disk is full; exactly one
    `fault` (storage) reaches the other channels (JSON lines); when space returns every event is written in
    order, then `recovered`; a start on a full disk runs to the end as well (no crash loop)."""
    db = small_disk / "events.db"
    cfg = Config().replace(events={"database": str(db)})
    jsonl = tmp_path / "events.jsonl"
    gate = make_gate(cfg, open_source(str(visit_clip), cfg.camera), factory, events_file=jsonl)
    original = gate.analyzer.analyse
    state = {"filler": None, "freed": False}

    def analyse(image):
        if state["filler"] is None:
            state["filler"] = fill(small_disk)
        elif not state["freed"] and "denied" in kinds(gate.events.recorded):
            state["filler"].unlink()
            state["freed"] = True
        return original(image)

    gate.analyzer.analyse = analyse
    gate.run()
    assert state["freed"]
    lines = [json.loads(x) for x in jsonl.read_text().splitlines()]
    faults = [x for x in lines if x["event"] == "fault"]
    assert len(faults) == 1 and faults[0]["detail"].startswith("storage:"), faults
    states = relay_states(factory)
    assert [k for i, k in enumerate(states) if i == 0 or k != states[i - 1]] == [0, 1, 0]  # let in, relocked
    stored = EventStore(db).all()
    decisions = [k for k in kinds(stored) if k in ("unlocked", "locked", "denied")]
    assert decisions == ["unlocked", "locked", "denied"]
    assert kinds(stored)[0] == "started" and kinds(stored)[-2:] == ["recovered", "stopped"]
    assert "fault" in kinds(stored)
    assert {e.uid for e in gate.events.recorded} <= {e.uid for e in stored}

    filler = fill(small_disk)
    factory.reset()
    again = make_gate(cfg, open_source(str(visit_clip), cfg.camera), factory)
    assert again.run() > 100  # a start on a full disk runs the whole clip
    assert kinds(again.events.recorded).count("fault") == 1 and again.events.storage_fault
    assert relay_states(factory)[-1] == 0
    filler.unlink()
