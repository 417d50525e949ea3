"""Monitor mode: a hall camera that counts people, masks and distancing — and never drives a lock.

``maskgate run --mode monitor`` runs :class:`Monitor` instead of the gate.  Per analysed frame it
finds every face of at least ``monitor.min_face`` pixels (crowds: far faces are small, the door's
``detection.min_face`` does not apply) with ``monitor.detector``, classifies each, and estimates
where people stand from the size of their faces (:mod:`maskgate.edge.crowd`).  The crowd state —
the median people count, masked count and number of pairs closer than ``monitor.min_distance_m``
over the last ``monitor.window`` analysed frames — is published continuously as telemetry
(:class:`~maskgate.edge.status.GateStatus` with ``mode="monitor"``) and recorded as a ``crowd``
event when it changes, at most once per ``monitor.event_seconds``.

The monitor builds no :class:`~maskgate.edge.actuators.Hardware`: no lock relay, no GPIO pin is
ever touched, and remote unlock commands are refused.  A stalled camera is a ``fault`` event and
is reopened with backoff, as at the door (the loop is :class:`maskgate.edge.loop.FrameLoop`, shared with the gate).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from maskgate.edge.analysis import FrameAnalyzer, FrameResult
from maskgate.edge.config import Config
from maskgate.edge.crowd import CrowdReport, report_for
from maskgate.edge.loop import FrameLoop
from maskgate.edge.status import GateStatus

log = logging.getLogger(__name__)


# -- the analyzer ------------------------------------------------------------------------------------ #


def monitor_detector(cfg: Config) -> str:
    """The detector file monitor mode uses: ``monitor.detector`` (a bare name is a packaged model), or the door's."""
    name = cfg.monitor.detector
    if not name:
        return cfg.models.detector
    if Path(name).name == name:
        from maskgate.edge.model_files import artifact_dir

        return str(artifact_dir() / name)
    return name


def build_monitor_analyzer(cfg: Config) -> FrameAnalyzer:
    """The door's analysis with the monitor's settings: its detector (tiled: ``monitor.tiles``),
    ``monitor.score_threshold`` for every face, ``monitor.min_face`` and ``monitor.mask_threshold``
    (-1: the door's, from the config or else the manifest).
    """
    from maskgate.edge.model_files import build_analyzer
    from maskgate.edge.tiles import TiledDetector

    score = cfg.monitor.score_threshold
    # every face the detector finds counts alike: no "person at the door" with others held to a higher score
    detection = {"score_threshold": score, "other_face_score": score}
    if cfg.monitor.mask_threshold >= 0:
        detection["mask_threshold"] = cfg.monitor.mask_threshold
    door = build_analyzer(cfg.replace(models={"detector": monitor_detector(cfg)}, detection=detection))
    detector = TiledDetector(door.detector, cfg.monitor.tiles)
    return FrameAnalyzer(detector, door.classifier, min_face=cfg.monitor.min_face, mask_threshold=door.mask_threshold,
                         max_face_fraction=door.max_face_fraction, other_face_score=door.other_face_score)


def analyse_crowd(analyzer: FrameAnalyzer, image, cfg: Config, min_distance_m: float | None = None
                  ) -> tuple[FrameResult, CrowdReport]:
    """Faces in ``image`` and the crowd they make."""
    result = analyzer.analyse(image)
    h, w = image.shape[:2]
    return result, report_for(result.faces, (w, h), cfg.monitor, min_distance_m)


# -- the crowd state --------------------------------------------------------------------------------- #


@dataclass(frozen=True)
class CrowdState:
    people: int = 0
    masked: int = 0
    violations: int = 0

    @property
    def masked_share(self) -> float | None:
        return self.masked / self.people if self.people else None

    def describe(self, min_distance_m: float) -> str:
        if not self.people:
            return "nobody"
        pairs = "pair" if self.violations == 1 else "pairs"
        return (f"{self.people} {'person' if self.people == 1 else 'people'}, {self.masked} masked "
                f"({100 * self.masked_share:.0f}%), {self.violations} {pairs} closer than {min_distance_m:g} m")


class CrowdTracker:
    """Per-frame crowd reports → a steady state, and when that state is worth an event.

    The state is the median of each count over the last ``window`` analysed frames, so a face the
    detector misses in one frame changes nothing.  :meth:`update` returns the state when it differs
    from the last recorded one and ``event_seconds`` have passed since that was recorded (a change
    inside the interval is recorded when the interval ends, if it still holds).  Nobody in view is
    the initial state: an empty hall records nothing.
    """

    def __init__(self, window: int, event_seconds: float):
        self.window = window
        self.event_seconds = event_seconds
        self._recent: list[CrowdState] = [CrowdState()] * window  # nobody before the first frame
        self.state = CrowdState()
        self.recorded = CrowdState()
        self._recorded_ts: float | None = None

    def update(self, ts: float, report: CrowdReport) -> CrowdState | None:
        self._recent.append(CrowdState(report.people, report.masked, report.violations))
        del self._recent[:-self.window]
        self.state = CrowdState(*(_median([getattr(s, k) for s in self._recent])
                                  for k in ("people", "masked", "violations")))
        if self.state == self.recorded:
            return None
        if self._recorded_ts is not None and ts - self._recorded_ts < self.event_seconds:
            return None
        self.recorded, self._recorded_ts = self.state, ts
        return self.state


def _median(values: list[int]) -> int:
    return sorted(values)[len(values) // 2]


# -- the loop ---------------------------------------------------------------------------------------- #


class Monitor(FrameLoop):
    """Watch a hall: count people, masks and distancing; record ``crowd`` events; drive nothing.

    Builds no :class:`~maskgate.edge.actuators.Hardware`: no relay, no GPIO pin is ever touched.
    """

    mode = "monitor"

    def __init__(self, cfg: Config, **kwargs):
        self.fault: str | None = None
        self._seen = 0  # faces in the last analysed frame
        self._nobody = report_for((), (1, 1), cfg.monitor)
        super().__init__(cfg, **kwargs)

    def _build_analyzer(self) -> FrameAnalyzer:
        return build_monitor_analyzer(self.cfg)

    def _setup(self) -> None:
        self.tracker = CrowdTracker(self.cfg.monitor.window, self.cfg.monitor.event_seconds)

    # -- observers (any thread) ------------------------------------------------------------------ #

    def status(self) -> GateStatus:
        s = self.tracker.state
        share = s.masked_share
        return GateStatus(fault=self.fault, mode="monitor", fps=round(self._fps, 2), infer_ms=round(self._infer_ms, 2),
                          frames=self.frames, people=s.people, masked=s.masked,
                          masked_share=None if share is None else round(share, 3), violations=s.violations)

    def command(self, name: str, payload: dict) -> None:
        """Remote commands (MQTT thread): a monitor has no lock to open."""
        log.warning("ignored remote command %r: monitor mode drives no lock", name)

    # -- each frame ------------------------------------------------------------------------------ #

    def _on_frame(self, frame) -> None:
        if self.fault is not None:
            self.events.record("recovered", frame.ts, frame.index, detail=self.fault)
            self.fault = None
        result = self._analyse(frame.image, frame.ts, self._seen == 0)
        if result.analysed:
            self._seen = len(result.faces)
            h, w = frame.image.shape[:2]
            report = report_for(result.faces, (w, h), self.cfg.monitor)
        else:
            report = self._nobody  # nobody in the last analysed frame, and nothing moved since
        state = self.tracker.update(frame.ts, report)
        if state is not None:
            self.events.record("crowd", frame.ts, frame.index, faces=state.people,
                               decision="violation" if state.violations else "clear",
                               detail=state.describe(self.cfg.monitor.min_distance_m))

    def _fault_now(self, reason: str) -> None:
        if self.fault is None:
            log.error("fault: %s", reason)
            self.events.record("fault", self._last_ts, -1, detail=reason)
        self.fault = reason
