"""Fault matrix: a soak — the gate replaying visits at full speed, its memory, descriptors and database watched.
Each test's docstring is its row in docs/faults.md (tests/fault_matrix.py); `maskgate soak --visits 600` is
the day-long version whose figures docs/faults.md reports."""

from __future__ import annotations

import pytest

from maskgate.edge.sources import EndOfStream
from maskgate.soak import LoopedSource, run_soak, slope


def test_a_soak_of_visits_keeps_memory_descriptors_and_the_database_bounded(shared):
    """Fault: a soak: the gate replays visits at full speed for hours of a door's day.
    Injected: 120 visits (a masked visitor and an unmasked one per replay of a clip) through the real gate, with
    events.max_events = 100; RSS and open descriptors sampled after every replay (`maskgate soak` runs 600).
    Outcome: every visit decided (60 let in, 60 denied); open descriptors flat (slope 0); RSS slope under
    8 MiB per 1000 visits after a warm-up; the database holds at most max_events + 10 events."""
    report = run_soak(120, encounters=shared / "data" / "encounters", max_events=100)
    print("\n".join(report.lines()))
    assert (report.unlocked, report.denied) == (60, 60)
    assert report.events == 182 > report.db_events  # 60 x (unlocked, locked, denied), started, stopped: pruned
    assert report.db_events <= 110
    assert report.fds_end == report.fds_start and report.fds_per_1000_visits == 0
    assert report.rss_kib_per_1000_visits < 8 * 1024


def test_the_slope_and_the_looped_source_measure_what_they_say(shared, tmp_path):
    """The soak's instruments can fail: a slope is the least-squares one; replays continue the frame clock."""
    assert slope([0, 1, 2, 3], [5, 7, 9, 11]) == 2.0 and slope([1], [3]) == 0.0
    from maskgate.democlip import Segment, write_clip

    clip = write_clip(tmp_path / "c.avi", [Segment("empty", 0.5)], encounters=shared / "data" / "encounters")
    seen = []
    source = LoopedSource(clip, 10.0, 3, on_replay=seen.append)
    source.open()
    frames = [source.read(1.0) for _ in range(15)]
    with pytest.raises(EndOfStream):
        source.read(1.0)
    source.close()
    assert [f.index for f in frames] == list(range(15)) and frames[-1].ts == 1.4 and seen == [1, 2, 3]
