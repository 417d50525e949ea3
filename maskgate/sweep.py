"""The threshold trade-off: which frames the gate would open for at other thresholds, without rerunning models.

A frame's verdict depends on two thresholds, the detector's score and the classifier's ``p_mask``.
The models run once per frame, at the lowest detector score of interest, and their candidates are
recorded (:func:`record_candidates`); every other pair of thresholds is then a pure function of the
record (:func:`maskgate.edge.analysis.select_faces`, :func:`maskgate.edge.policy.frame_passes`).

For one detector score the faces at the door do not depend on ``p_mask`` — it only decides which of
them count as masked — and a frame passes when every one of them does.  So each frame has an
*unlock point*: the lowest ``p_mask`` among its faces, the highest threshold at which it would still
unlock (:func:`unlock_point`), or ``None`` when no threshold would open the door for it (no face, too
many people).  Counting false accepts and false rejects at any ``p_mask`` is then a comparison.

``maskgate convert`` chooses the door's thresholds with these functions; ``maskgate eval --sweep``
prints the same trade-off for any frames, so that a site can see what a change of threshold costs
on its own recordings.
"""

from __future__ import annotations

from dataclasses import dataclass

from maskgate.edge.analysis import Candidate, FrameAnalyzer, select_faces
from maskgate.edge.policy import frame_passes

MUST_UNLOCK = "with_mask"
#: Detector scores of a sweep (the door's 0.1 among them); ``maskgate convert`` chooses from these.
SCORE_GRID = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5)
#: ``p_mask`` values a sweep prints (its JSON has every unlock point, for any other value).
P_MASK_GRID = (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)


@dataclass(frozen=True)
class Record:
    """One frame: its name, expected label, source scene ("" when none) and the detector's candidates."""

    name: str
    label: str
    source: str
    candidates: list[Candidate]

    @property
    def must_unlock(self) -> bool:
        return self.label == MUST_UNLOCK


def record_candidates(analyzer: FrameAnalyzer, frames, score: float | None = None) -> list[Record]:
    """Run the models once on ``(name, label, source, image)`` items, keeping every candidate at ``score``."""
    return [Record(name, label, source, analyzer.candidates(image, score)) for name, label, source, image in frames]


def unlock_point(candidates: list[Candidate], *, score: float, mask_index: int, not_face_index: int | None,
                 other_face_score: float, max_people: int = 1) -> float | None:
    """The highest ``p_mask`` threshold at which the frame unlocks with detector threshold ``score``, or None."""
    # mask_threshold 0: every face counts as masked, so only "no face" and "too many people" refuse
    faces, _ = select_faces(candidates, mask_index=mask_index, not_face_index=not_face_index, mask_threshold=0.0,
                            other_face_score=other_face_score, min_score=score)
    if not frame_passes(faces, max_people)[0]:
        return None
    return min(f.p_mask for f in faces)


def unlocks(point: float | None, p_mask: float) -> bool:
    return point is not None and point >= p_mask


class Sweep:
    """Unlock points of recorded frames at each detector score of a grid.

    ``analyzer`` supplies the classifier's label order and the gate's ``other_face_score``; the
    records must come from its models.
    """

    def __init__(self, records: list[Record], analyzer: FrameAnalyzer, scores=SCORE_GRID, max_people: int = 1):
        clf = analyzer.classifier
        self.records = records
        self.scores = tuple(scores)
        self.points = {s: [unlock_point(r.candidates, score=s, mask_index=clf.mask_index,
                                        not_face_index=clf.not_face_index, other_face_score=analyzer.other_face_score,
                                        max_people=max_people) for r in records]
                       for s in self.scores}

    def counts(self, score: float, p_mask: float, subset=None) -> dict:
        """False accepts / false rejects at one pair of thresholds, over ``subset`` (indices) or every record."""
        idx = range(len(self.records)) if subset is None else subset
        fa = fr = must_lock = must_unlock = 0
        for i in idx:
            opened = unlocks(self.points[score][i], p_mask)
            if self.records[i].must_unlock:
                must_unlock += 1
                fr += not opened
            else:
                must_lock += 1
                fa += opened
        return {"score": score, "p_mask": round(float(p_mask), 4), "false_accepts": fa, "must_lock": must_lock,
                "false_rejects": fr, "must_unlock": must_unlock,
                "false_reject_rate": round(fr / must_unlock, 4) if must_unlock else 0.0}

    def must_lock_bound(self, score: float, subset=None) -> float | None:
        """The highest unlock point of a must-stay-locked record (of ``subset``): ``p_mask`` must lie above it."""
        idx = range(len(self.records)) if subset is None else subset
        return max((self.points[score][i] for i in idx
                    if not self.records[i].must_unlock and self.points[score][i] is not None), default=None)

    def hardest_must_lock(self, score: float, n: int = 10) -> list[tuple[float, Record]]:
        """The must-stay-locked records with the highest unlock points: the frames that bound ``p_mask``."""
        pts = [(p, r) for p, r in zip(self.points[score], self.records) if not r.must_unlock and p is not None]
        return sorted(pts, key=lambda x: -x[0])[:n]

    def never_unlock(self, score: float, subset=None) -> list[Record]:
        """Masked records (of ``subset``) that no ``p_mask`` would let in: no face at the door found at ``score``."""
        idx = range(len(self.records)) if subset is None else subset
        return [self.records[i] for i in idx if self.records[i].must_unlock and self.points[score][i] is None]
