"""Fault matrix: what comes in — garbage frames, a wall clock that jumps, fuzzed config files.
Each test's docstring is its row in docs/faults.md (tests/fault_matrix.py)."""

from __future__ import annotations

import random
import time

import cv2
import numpy as np
import pytest

from maskgate import cli
from maskgate.deploy import tomlw
from maskgate.edge import config as config_mod
from maskgate.edge.clock import EARLIEST_PLAUSIBLE
from maskgate.edge.config import Config
from maskgate.edge.sources import open_source
from maskgate.errors import ConfigError

from fault_helpers import ArraySource, black, kinds
from test_gate import MASKED, StallingCamera, make_gate, relay_states


def test_garbage_frames_in_a_folder_at_1_fps_neither_crash_nor_unlock(shared, factory, tmp_path):
    """Fault: garbage frames from a folder source at 1 fps.
    Injected: all-black, all-white, noise, a 10x10 image, a 16-bit PNG and a JPEG cut in half, replayed at 1 fps.
    Outcome: the run ends normally, the relay is never energized, no `unlocked`; no `fault` (single bad frames
    are skipped, the camera is not unusable)."""
    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(16)
    cv2.imwrite(str(folder / "01_black.png"), black())
    cv2.imwrite(str(folder / "02_white.png"), np.full((480, 640, 3), 255, np.uint8))
    cv2.imwrite(str(folder / "03_noise.png"), rng.integers(0, 256, (480, 640, 3), dtype=np.uint8))
    cv2.imwrite(str(folder / "04_tiny.png"), np.full((10, 10, 3), 128, np.uint8))
    cv2.imwrite(str(folder / "05_deep.png"), rng.integers(0, 65536, (480, 640, 3), dtype=np.uint16))
    jpeg = (shared / "data" / "encounters" / MASKED).read_bytes()
    (folder / "06_truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (folder / "07_empty.jpg").write_bytes(b"")
    for i in range(8, 12):
        cv2.imwrite(str(folder / f"{i:02d}_black.png"), black())
    cfg = Config().replace(events={"database": str(tmp_path / "e.db")}, camera={"fps": 1.0})
    gate = make_gate(cfg, open_source(str(folder), cfg.camera), factory)
    frames = gate.run()
    assert frames >= 9
    seen = kinds(gate.events.recorded)
    assert seen[0] == "started" and seen[-1] == "stopped"
    assert "unlocked" not in seen and "fault" not in seen
    assert set(relay_states(factory)) == {0}


def test_frames_of_the_wrong_dtype_or_shape_are_skipped_and_a_camera_of_only_those_is_a_fault(factory, tmp_path):
    """Fault: frames of the wrong dtype, shape or size.
    Injected: a source delivering float32, uint16, grayscale, BGRA, 1x1, empty and list frames between black
    ones, then 40 float32 frames in a row, then black frames again.
    Outcome: no crash, no unlock; isolated bad frames are skipped without a fault; the run of bad frames is one
    `fault` ("camera unusable"), then `recovered` when good frames return; the relay stays de-energized."""
    bad = [np.zeros((480, 640, 3), np.float32), np.zeros((480, 640, 3), np.uint16), np.zeros((480, 640), np.uint8),
           np.zeros((480, 640, 4), np.uint8), np.zeros((1, 1, 3), np.uint8), np.zeros((0, 0, 3), np.uint8),
           [[0, 0, 0]], None]
    images = [x for b in bad for x in (black(), b)]
    images += [np.ones((480, 640, 3), np.float32)] * 40 + [black()] * 5
    cfg = Config().replace(events={"database": str(tmp_path / "e.db")})
    gate = make_gate(cfg, ArraySource(images), factory)
    gate.run()
    seen = kinds(gate.events.recorded)
    assert seen == ["started", "fault", "recovered", "stopped"], seen
    fault = gate.events.recorded[1]
    assert fault.detail.startswith("camera unusable: frames are float32")
    assert gate.frames == len(images) - len(bad) - 40
    assert set(relay_states(factory)) == {0}


def test_wall_clock_jumps_do_not_change_unlock_timing_and_events_say_the_clock_is_unsynchronised(
        shared, factory, tmp_path, monkeypatch):
    """Fault: the wall clock jumps by +1 h, -1 h and to 1970 (no RTC; NTP corrects it after boot).
    Injected: `time.time` replaced while a live camera (monotonic timestamps) shows a masked visitor; the jumps
    happen while the door is unlocked.
    Outcome: the lock closes unlock_seconds after it opened on the camera clock; no stall fault; events stay in
    order (seq), and every event stamped in 1970 carries clock_synced = false."""
    masked = cv2.imread(str(shared / "data" / "encounters" / MASKED))
    cfg = Config().replace(events={"database": str(tmp_path / "e.db")}, policy={"unlock_seconds": 1.5},
                           camera={"stall_timeout": 1.0})
    cam = StallingCamera(masked, good=10 ** 9)
    gate = make_gate(cfg, cam, factory)
    real_time = time.time
    jump = {"offset": 0.0}
    monkeypatch.setattr(time, "time", lambda: real_time() + jump["offset"])
    original = gate.analyzer.analyse
    offsets = iter([3600.0, -3600.0, -real_time() + 86400.0])

    def analyse(image):
        result = original(image)
        if "unlocked" in kinds(gate.events.recorded) and gate.hw.lock is not None and not gate.hw.lock.locked:
            jump["offset"] = next(offsets, jump["offset"])
        if "locked" in kinds(gate.events.recorded):
            gate.stop()
        return result

    gate.analyzer.analyse = analyse
    t0 = time.monotonic()
    gate.run()
    monkeypatch.undo()
    ev = gate.events.recorded
    seen = kinds(ev)
    assert "fault" not in seen and seen.index("unlocked") < seen.index("locked")
    unlocked, locked = ev[seen.index("unlocked")], ev[seen.index("locked")]
    assert locked.ts - unlocked.ts == pytest.approx(1.5, abs=0.25)
    assert time.monotonic() - t0 < 60
    seqs = [e.seq for e in ev]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    walls = [e.wall_time for e in ev]
    assert min(walls) < EARLIEST_PLAUSIBLE and walls != sorted(walls)  # the clock did jump
    assert all(e.clock_synced is False for e in ev if e.wall_time < EARLIEST_PLAUSIBLE)
    assert all(isinstance(e.clock_synced, bool) for e in ev)


KEYS = [(key, tp) for key, tp, _, _ in config_mod.describe()]
VALUES = [0, -1, 1, 10 ** 30, -(10 ** 30), 0.5, 1e308, float("nan"), float("inf"), -float("inf"), True, False, "",
          "x" * 5000, "🙂\n\t\"'", "0", "auto", [], [1, "a"], ["desk@example.com"], {}, {"a": 1}]


def _validate(path) -> tuple[int, str]:
    """`maskgate run --validate-config --config PATH`, in this process, as the CLI runs it."""
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = cli.main(["run", "--config", str(path), "--validate-config"])
    return rc, err.getvalue()


def _assert_valid_or_one_line(rc: int, err: str, what) -> None:
    assert rc in (0, 1), what
    lines = err.strip().splitlines()
    if rc == 0:
        assert not lines, (what, err)
    else:
        assert len(lines) == 1 and lines[0].startswith("maskgate: error: config key '"), (what, err)


def test_fuzzed_config_files_are_valid_or_one_line_naming_the_key(tmp_path):
    """Fault: fuzzed config files.
    Injected: every key set to each of 22 hostile values (huge, NaN, infinity, wrong types, long and control
    strings, lists, tables), then 300 random byte-level mutations of a valid config, through the CLI's
    `run --validate-config`.
    Outcome: exit 0 and a valid config, or exit 1 with one line `maskgate: error: config key '...'` naming a real
    key (or the file, for TOML that does not parse); never a traceback."""
    known = {k for k, _ in KEYS} | {k.split(".")[0] for k, _ in KEYS}
    path = tmp_path / "fuzz.toml"
    for key, _ in KEYS:
        section, name = key.split(".")
        for value in VALUES:
            if isinstance(value, dict):  # an inline table where a value belongs
                inline = ", ".join(f"{k} = {v}" for k, v in value.items())
                path.write_text(f"[{section}]\n{name} = {{{inline}}}\n")
            else:
                path.write_text(tomlw.dumps({section: {name: value}}))
            rc, err = _validate(path)
            _assert_valid_or_one_line(rc, err, (key, value))
            if rc == 1:
                named = err.split("config key '")[1].split("'")[0]
                assert named.split("[")[0] in known, err
            elif isinstance(value, float) and not np.isfinite(value):
                pytest.fail(f"{key} = {value} was accepted")
    base = tomlw.dumps({"camera": {"fps": 10.0, "source": "demo"}, "policy": {"window": 5, "required": 3},
                        "email": {"recipients": ["a@b.c"]}, "gpio": {"lock_pin": 17}}).encode()
    rng = random.Random(16)
    for i in range(300):
        data = bytearray(base)
        for _ in range(rng.randint(1, 6)):
            pos = rng.randrange(len(data))
            op = rng.random()
            if op < 0.4:
                data[pos] = rng.randrange(256)
            elif op < 0.7:
                del data[pos]
            else:
                data[pos:pos] = rng.choice([b"[", b"]", b"=", b'"', b"\n", b"nan", b"9" * 30, b"\xff", b"[[x]]"])
        path.write_bytes(bytes(data))
        rc, err = _validate(path)
        _assert_valid_or_one_line(rc, err, bytes(data))


def test_the_fuzz_checks_can_fail():
    """A NaN threshold is refused (it would pass every range check: nan < lo is False)."""
    with pytest.raises(ConfigError, match="finite"):
        config_mod.from_dict({"policy": {"unlock_seconds": float("nan")}})
