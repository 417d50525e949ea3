"""A snapshot of the gate's state, for telemetry and remote observers (MQTT, Home Assistant)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GateStatus:
    lock: str = "locked"  # "locked" | "unlocked"
    fault: str | None = None  # why the gate is in a fault state (camera stalled, ...), None when healthy
    door_open: bool | None = None  # None when no door contact is wired
    mode: str = "gate"  # "gate" (drives the lock) | "monitor" (hall camera, never drives a lock)
    fps: float = 0.0  # frames processed per second, recent average
    infer_ms: float = 0.0  # detector + classifier time per analysed frame, recent average
    frames: int = 0  # frames seen since start
    people: int = 0  # faces of at least min_face in the latest frame (monitor: the crowd state's count)
    # monitor mode only (None at the door): the crowd state, see maskgate.edge.monitor
    masked: int | None = None  # people wearing a mask
    masked_share: float | None = None  # masked / people; None when nobody is in view
    violations: int | None = None  # pairs of people closer than monitor.min_distance_m
