"""The gate policy on plain numbers: visits, K of M, one decision per visit, timers, faults."""

import pytest

from maskgate.edge.analysis import Face
from maskgate.edge.config import PolicyConfig
from maskgate.edge.policy import GatePolicy, frame_passes

FPS = 10.0


def face(masked=True, width=200, p=None):
    return Face((100, 100, 100 + width, 100 + width), 0.9, p if p is not None else (0.95 if masked else 0.05),
                "with_mask" if masked else "without_mask", masked)


def feed(policy, frames, start=0.0, first_index=0):
    """frames: list of face lists; returns all events."""
    events = []
    for i, faces in enumerate(frames):
        idx = first_index + i
        events += policy.on_frame(start + i / FPS, idx, faces)
    return events


def kinds(events):
    return [e.event for e in events]


def test_masked_visitor_unlocks_once_then_relocks_after_unlock_seconds():
    p = GatePolicy(PolicyConfig(window=5, required=3, unlock_seconds=2.0))
    ev = feed(p, [[face()]] * 30)  # 3 s of a masked person standing there
    assert kinds(ev) == ["unlocked", "locked"]
    unlocked, locked = ev
    assert unlocked.frame == 2  # the 3rd masked frame
    assert locked.ts == pytest.approx(unlocked.ts + 2.0)
    assert unlocked.fields["decision"] == "unlock"


def test_unmasked_visitor_is_denied_once_per_visit():
    p = GatePolicy(PolicyConfig(window=5, required=3))
    ev = feed(p, [[face(False)]] * 50)
    assert kinds(ev) == ["denied"]
    assert ev[0].frame == 2  # 3 failures: K of M can no longer be reached
    assert ev[0].fields["detail"] == "no mask"
    assert not p.lock_open


def test_a_new_visit_needs_the_doorway_empty_for_the_gap():
    p = GatePolicy(PolicyConfig(window=5, required=3, visit_gap_seconds=2.0, unlock_seconds=1.0))
    ev = feed(p, [[face(False)]] * 10)  # denied
    ev += feed(p, [[]] * 10, start=1.0, first_index=10)  # 1 s empty: same visit
    ev += feed(p, [[face()]] * 10, start=2.0, first_index=20)  # comes back masked: still the same visit
    assert kinds(ev) == ["denied"]
    ev2 = feed(p, [[]] * 25, start=3.0, first_index=30)  # 2.5 s empty: the visit is over
    ev2 += feed(p, [[face()]] * 10, start=5.5, first_index=55)
    assert kinds(ev2) == ["unlocked"]


def test_k_of_m_tolerates_an_odd_frame_but_not_a_majority():
    p = GatePolicy(PolicyConfig(window=5, required=3))
    ev = feed(p, [[face()], [face(False)], [face()], [face()]])
    assert kinds(ev) == ["unlocked"]
    p = GatePolicy(PolicyConfig(window=5, required=3))
    ev = feed(p, [[face()], [face(False)], [face(False)], [face()], [face(False)]])
    assert kinds(ev) == ["denied"]


def test_another_unmasked_person_or_too_many_people_deny():
    assert frame_passes([face(), face(False, width=120)], max_people=2) == (False, "another person without a mask")
    assert frame_passes([face(), face(width=120)], max_people=1)[0] is False
    assert frame_passes([face(), face(width=120)], max_people=2) == (True, "masked")
    p = GatePolicy(PolicyConfig(window=3, required=2, max_people=1))
    ev = feed(p, [[face(), face(width=150)]] * 5)
    assert kinds(ev) == ["denied"] and "2 people" in ev[0].fields["detail"]


def test_soft_enforcement_logs_but_never_drives_the_lock():
    p = GatePolicy(PolicyConfig(enforce="soft", window=3, required=2))
    ev = feed(p, [[face()]] * 5)
    assert kinds(ev) == ["allowed"] and not p.lock_open
    p = GatePolicy(PolicyConfig(enforce="soft", window=3, required=2))
    ev = feed(p, [[face(False)]] * 5)
    assert kinds(ev) == ["denied"] and "soft" in ev[0].fields["detail"] and not p.lock_open


def test_exit_button_and_remote_unlock_open_for_their_time():
    p = GatePolicy(PolicyConfig(exit_unlock_seconds=3.0))
    ev = p.on_exit_button(10.0)
    assert kinds(ev) == ["exit_request", "unlocked"] and p.lock_open
    assert kinds(p.tick(12.9)) == [] and p.lock_open
    assert kinds(p.tick(13.0)) == ["locked"] and not p.lock_open
    ev = p.on_remote_unlock(20.0, "mqtt")
    assert kinds(ev) == ["remote_unlock", "unlocked"]


def test_door_contact_relocks_on_close_and_raises_held_open_once():
    p = GatePolicy(PolicyConfig(unlock_seconds=60, held_open_seconds=30))
    feed(p, [[face()]] * 3)
    assert p.lock_open
    assert kinds(p.on_door(1.0, True)) == ["door_opened"]
    assert kinds(p.tick(20.0)) == []
    assert kinds(p.tick(31.0)) == ["held_open"]
    assert kinds(p.tick(40.0)) == []
    assert kinds(p.on_door(41.0, False)) == ["door_closed", "locked"]
    assert not p.lock_open
    ev = p.on_door(50.0, True)
    assert ev[0].fields["detail"].startswith("while locked")


def test_a_fault_forces_the_lock_and_blocks_decisions_until_recovered():
    p = GatePolicy(PolicyConfig(window=3, required=2, unlock_seconds=60))
    feed(p, [[face()]] * 2)
    assert p.lock_open
    ev = p.on_fault(1.0, 10, "camera stalled")
    assert kinds(ev) == ["fault", "locked"] and not p.lock_open
    assert kinds(p.on_fault(1.5, 11, "camera stalled")) == []  # the same fault is recorded once
    assert kinds(p.on_exit_button(2.0)) == ["exit_request", "denied"]
    assert kinds(feed(p, [[face()]] * 5, start=3.0)) == []
    assert kinds(p.on_recovered(4.0, 50)) == ["recovered"]
    assert kinds(feed(p, [[face()]] * 3, start=5.0, first_index=60)) == ["unlocked"]


def test_timers_follow_frame_timestamps_even_if_frames_are_late():
    """A frame that arrives late (a slow analysis) still relocks at the right frame time."""
    p = GatePolicy(PolicyConfig(unlock_seconds=1.0, visit_gap_seconds=2.0))
    ev = feed(p, [[face()]] * 5 + [[]] * 30 + [[face(False)]] * 5)
    assert kinds(ev) == ["unlocked", "locked", "denied"]
    assert ev[1].ts == pytest.approx(ev[0].ts + 1.0)
