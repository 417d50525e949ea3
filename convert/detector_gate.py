"""A detector judged at the gate with the committed classifier held fixed (``maskgate detector compare --gate``).

A new detector's full gate figure needs a classifier trained on its crops (``maskgate train``, about 15
minutes a seed).  Holding the committed classifier fixed isolates the detector and costs about 20 s
a detector: the gate-level rule of :func:`maskgate.convert.classifier.choose_detector_threshold` picks
this detector's own (score, ``p_mask``) pair, exactly as ``maskgate convert`` would, and the encounters
and face-free frames are then counted at that pair.  The committed classifier was trained on the
committed detector's crops, so the comparison favours the committed detector; among new runs it is
fair (docs/training.md, "The detector's fine-tuning over seeds").
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from maskgate.convert import manifest
from maskgate.convert.classifier import CLASSIFIER_NAME, _config_for, choose_detector_threshold
from maskgate.convert.detector import door_detector
from maskgate.errors import DataError


def judge_at_gate(shared: Path, detector: Path, models_dir: Path) -> dict:
    """``detector`` (an int8 .tflite) in the door's place beside ``models_dir``'s classifier: its pair and figures."""
    from maskgate.edge.model_files import build_analyzer
    from maskgate.evaluation import evaluate_gate, frames_from_folder, gate_outcomes
    from maskgate.facefree import face_free_frames

    man = manifest.load(models_dir)
    try:
        crop_level = man["artifacts"][CLASSIFIER_NAME]["thresholds"]["chosen"]["crop_level"]["threshold"]
    except KeyError:
        raise DataError(f"{models_dir / 'manifest.json'} has no crop-level threshold for {CLASSIFIER_NAME}") from None
    with tempfile.TemporaryDirectory(prefix="maskgate-gate-") as tmp:
        work = Path(tmp)
        door = door_detector(work)
        shutil.copy(models_dir / CLASSIFIER_NAME, work / CLASSIFIER_NAME)
        shutil.copy(detector, door)
        # the manifest's thresholds and settings, with this file's identity (the device refuses others)
        entry = dict(man["artifacts"].get(door.name, {}))
        entry.update(sha256=manifest.sha256_file(door), bytes=door.stat().st_size)
        man["artifacts"][door.name] = entry
        manifest.save(work, man)
        score, p_mask, _ = choose_detector_threshold(shared, work, door, float(crop_level))
        analyzer = build_analyzer(_config_for(work, score).replace(detection={"mask_threshold": p_mask}))
        encounters = evaluate_gate(analyzer, frames_from_folder(shared / "data" / "encounters"))
        face_free = gate_outcomes(analyzer, ((n, "no_face", "", f) for n, f in face_free_frames(shared)))
    return {"detector": str(detector), "score": score, "p_mask": p_mask, "encounters": encounters,
            "face_free": {"frames": len(face_free), "unlocked": sum(o.unlocked for o in face_free)}}


def format_judgements(rows: dict[str, dict]) -> str:
    lines = ["At the gate, the committed classifier held fixed, each detector with the pair the gate-level rule "
             "chooses for it:", "",
             "| detector | pair (score, p_mask) | false rejects, all | held-out | masked with no face at the door, all / held-out | "
             "false accepts | face-free frames unlocked |", "|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        a, h = r["encounters"]["all"], r["encounters"].get("held_out_scenes", {})
        # The held-out figure is the one that counts: the fine-tuning trains on the other scenes' faces.
        no_face = (f'{a["by_label"].get("with_mask", {}).get("no_face_found", 0)} / '
                   f'{h.get("by_label", {}).get("with_mask", {}).get("no_face_found", "–")}')
        lines.append(f"| {name} | {r['score']}, {r['p_mask']} | {a['false_rejects']} of {a['must_unlock']} | "
                     f"{h.get('false_rejects', '–')} of {h.get('must_unlock', '–')} | {no_face} | "
                     f"{a['false_accepts']} of {a['must_lock']} | {r['face_free']['unlocked']} of {r['face_free']['frames']} |")
    return "\n".join(lines)
