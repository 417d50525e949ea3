"""The gate policy: from per-frame faces to one decision per visit, and the lock's timeline.

Pure logic, no I/O and no clock of its own: time comes only from the frames' timestamps (and from
the timestamps the loop gives button and door-contact changes), so a replayed clip produces the
same decisions at any playback speed, and every rule is unit-testable with plain numbers.

Rules (``PolicyConfig``):

* A **visit** starts when a face of at least ``min_face`` appears in an empty doorway, and ends
  when the doorway has been empty for ``visit_gap_seconds``.  A visit gets exactly one decision.
* A frame **passes** when the person at the door (the largest face) is masked, no other face at the
  door is unmasked, and there are at most ``max_people`` faces.  The visit is **unlocked** as soon as
  ``required`` (K) of its last ``window`` (M) frames with faces pass, and **denied** as soon as that
  can no longer happen within M frames.
* ``enforce = "hard"``: an unlock opens the lock for ``unlock_seconds``; a deny keeps it locked.
  ``"soft"``: decisions are logged as ``allowed`` / ``denied`` (alerts still go out) but the lock is
  never driven by a mask decision.
* The request-to-exit button (and a remote unlock, when enabled) opens the lock for
  ``exit_unlock_seconds`` in both modes.  A door contact relocks as soon as the door closes after an
  opening, and raises ``held_open`` once when the door stays open longer than ``held_open_seconds``.
* A fault (camera stalled, model error) forces the lock locked until it clears; the loop reports it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Sequence

from maskgate.edge.analysis import Face
from maskgate.edge.config import PolicyConfig


@dataclass(frozen=True)
class PolicyEvent:
    """Something the loop must record (see :mod:`maskgate.edge.events`)."""

    event: str
    ts: float
    frame: int = -1
    fields: dict = field(default_factory=dict)


@dataclass
class _Visit:
    start_ts: float
    last_seen_ts: float
    passes: deque  # of bool, the last M frames with faces
    p_masks: deque  # p_mask of the person at the door in those frames
    faces_max: int = 0
    decided: str | None = None  # "unlock" | "deny"


def frame_passes(faces: Sequence[Face], max_people: int) -> tuple[bool, str]:
    """Whether one frame lets the person at the door in, and if not, why."""
    if not faces:
        return False, "no face"
    if len(faces) > max_people:
        return False, f"{len(faces)} people at the door (at most {max_people})"
    if not faces[0].masked:
        return False, "no mask"
    if any(not f.masked for f in faces[1:]):
        return False, "another person without a mask"
    return True, "masked"


class GatePolicy:
    def __init__(self, cfg: PolicyConfig):
        self.cfg = cfg
        self.visit: _Visit | None = None
        self.unlock_until: float | None = None  # frame-clock time the lock closes again; None = locked
        self.unlock_reason = ""
        self.door_open_since: float | None = None
        self.held_open_raised = False
        self.fault: str | None = None
        self._empty_since: float | None = None

    # -- state ---------------------------------------------------------------------------------- #

    @property
    def lock_open(self) -> bool:
        """What the lock should be now (the fault state always wins)."""
        return self.unlock_until is not None and self.fault is None

    # -- inputs --------------------------------------------------------------------------------- #

    def on_frame(self, ts: float, frame: int, faces: Sequence[Face], infer_ms: float = 0.0) -> list[PolicyEvent]:
        """One analysed frame; ``faces`` are those at the door, largest first."""
        out = self.tick(ts, frame)
        if not faces:
            if self.visit is not None:
                if self._empty_since is None:
                    self._empty_since = ts
                if ts - self._empty_since >= self.cfg.visit_gap_seconds:
                    self.visit = None
            return out
        self._empty_since = None
        if self.visit is None:
            m = self.cfg.window
            self.visit = _Visit(ts, ts, deque(maxlen=m), deque(maxlen=m))
        v = self.visit
        v.last_seen_ts = ts
        v.faces_max = max(v.faces_max, len(faces))
        if v.decided is not None or self.fault is not None:
            return out
        ok, why = frame_passes(faces, self.cfg.max_people)
        v.passes.append(ok)
        v.p_masks.append(faces[0].p_mask)
        n_ok = sum(v.passes)
        remaining = self.cfg.window - len(v.passes)
        common = {"p_mask": round(sum(v.p_masks) / len(v.p_masks), 4), "faces": len(faces), "infer_ms": round(infer_ms, 2)}
        if n_ok >= self.cfg.required:
            v.decided = "unlock"
            if self.cfg.enforce == "hard":
                out += self._unlock(ts, frame, self.cfg.unlock_seconds, "masked visitor", decision="unlock", **common)
            else:
                out.append(PolicyEvent("allowed", ts, frame, {"decision": "unlock", "detail": "soft enforcement", **common}))
        elif n_ok + remaining < self.cfg.required:
            v.decided = "deny"
            detail = why if self.cfg.enforce == "hard" else f"{why} (soft enforcement: lock not driven)"
            out.append(PolicyEvent("denied", ts, frame, {"decision": "deny", "detail": detail, **common}))
        return out

    def on_no_frame(self, ts: float) -> list[PolicyEvent]:
        """Time passes without an analysed frame (the motion gate skipped an empty, unchanged doorway)."""
        return self.on_frame(ts, -1, ())

    def tick(self, ts: float, frame: int = -1) -> list[PolicyEvent]:
        """Timers: relock when the unlock time is over; the held-open alarm."""
        out: list[PolicyEvent] = []
        if self.unlock_until is not None and ts >= self.unlock_until:
            out.append(self._lock(ts, frame, "unlock time over"))
        if (self.door_open_since is not None and not self.held_open_raised
                and ts - self.door_open_since >= self.cfg.held_open_seconds):
            self.held_open_raised = True
            out.append(PolicyEvent("held_open", ts, frame, {"detail": f"door open {ts - self.door_open_since:.0f} s"}))
        return out

    def on_exit_button(self, ts: float) -> list[PolicyEvent]:
        out = [PolicyEvent("exit_request", ts)]
        return out + self._unlock(ts, -1, self.cfg.exit_unlock_seconds, "exit button", decision="exit")

    def on_remote_unlock(self, ts: float, source: str, seconds: float | None = None) -> list[PolicyEvent]:
        """An unlock asked for from outside (MQTT, the installer's page); ``seconds`` defaults to the exit time."""
        out = [PolicyEvent("remote_unlock", ts, -1, {"detail": f"from {source}"})]
        seconds = self.cfg.exit_unlock_seconds if seconds is None else float(seconds)
        return out + self._unlock(ts, -1, seconds, f"remote ({source})", decision="remote")

    def on_door(self, ts: float, is_open: bool) -> list[PolicyEvent]:
        if is_open and self.door_open_since is None:
            self.door_open_since = ts
            self.held_open_raised = False
            detail = "while unlocked" if self.lock_open else "while locked (forced?)"
            return [PolicyEvent("door_opened", ts, -1, {"detail": detail})]
        if not is_open and self.door_open_since is not None:
            self.door_open_since = None
            out = [PolicyEvent("door_closed", ts)]
            if self.unlock_until is not None:  # relock on close
                out.append(self._lock(ts, -1, "door closed"))
            return out
        return []

    def on_fault(self, ts: float, frame: int, reason: str) -> list[PolicyEvent]:
        """Force the lock locked; the visit in progress is abandoned (no decision)."""
        if self.fault == reason:
            return []
        first = self.fault is None
        self.fault = reason
        self.visit = None
        out = [PolicyEvent("fault", ts, frame, {"detail": reason})]
        if first and self.unlock_until is not None:
            out.append(self._lock(ts, frame, f"fault: {reason}"))
        return out

    def on_recovered(self, ts: float, frame: int) -> list[PolicyEvent]:
        if self.fault is None:
            return []
        reason, self.fault = self.fault, None
        return [PolicyEvent("recovered", ts, frame, {"detail": reason})]

    # -- lock timeline -------------------------------------------------------------------------- #

    def _unlock(self, ts: float, frame: int, seconds: float, reason: str, **fields) -> list[PolicyEvent]:
        if self.fault is not None:
            return [PolicyEvent("denied", ts, frame, {**fields, "decision": "deny", "detail": f"fault: {self.fault}"})]
        was_open = self.unlock_until is not None
        self.unlock_until = max(self.unlock_until or ts, ts + seconds)
        self.unlock_reason = reason
        if was_open:
            return []
        return [PolicyEvent("unlocked", ts, frame, {**fields, "detail": reason})]

    def force_lock(self, ts: float, reason: str) -> list[PolicyEvent]:
        """Close an open lock now (the gate is stopping)."""
        return [self._lock(ts, -1, reason)] if self.unlock_until is not None else []

    def _lock(self, ts: float, frame: int, reason: str) -> PolicyEvent:
        self.unlock_until = None
        return PolicyEvent("locked", ts, frame, {"detail": reason})
