"""int8 vs float gate rates: on the bench frames, and as recorded by ``maskgate convert``."""

from __future__ import annotations

import numpy as np

from maskgate.errors import MaskgateError
from maskgate.bench.common import EVAL_TARGET_POINTS, FrameSet


def gate_rates(outputs: list, frames: FrameSet, max_people: int) -> dict:
    from maskgate.edge.policy import frame_passes
    from maskgate.evaluation import FrameOutcome, rates

    outcomes = []
    for name, result in zip(frames.names, outputs):
        label, source = frames.labels[name]
        outcomes.append(FrameOutcome(name, label, source, frame_passes(result.faces, max_people)[0],
                                     len(result.faces), result.faces[0].p_mask if result.faces else None))
    return rates(outcomes)


def compare_int8_float(int8: dict, flt: dict, verdicts_agree: float | None) -> dict:
    def pts(r, key):
        v = r.get(key)
        return round(100.0 * v, 2) if v is not None else None

    out = {}
    for key in ("false_accept_rate", "false_reject_rate"):
        a, b = pts(int8, key), pts(flt, key)
        out[key.replace("_rate", "_points")] = {"int8": a, "float": b,
                                                 "int8_minus_float": round(a - b, 2) if a is not None and b is not None else None}
    diffs = [abs(v["int8_minus_float"]) for v in out.values() if v["int8_minus_float"] is not None]
    out["max_abs_difference_points"] = max(diffs) if diffs else None
    out["within_target"] = (max(diffs) <= EVAL_TARGET_POINTS) if diffs else None
    if verdicts_agree is not None:
        out["same_verdict_fraction"] = round(verdicts_agree, 4)
    return out


def recorded_eval(cfg) -> dict | None:
    """int8 vs float gate rates that ``maskgate convert`` recorded in the manifest (all encounters)."""
    from maskgate.edge.model_files import manifest_entry, model_paths

    try:
        entry = manifest_entry(model_paths(cfg)[1])
    except MaskgateError:
        return None
    g = entry.get("metrics", {}).get("gate_encounters")
    if not g or "int8" not in g or "float" not in g:
        return None
    try:
        a, b = g["int8"]["encounters"]["all"], g["float"]["encounters"]["all"]
    except (KeyError, TypeError):
        return None
    return compare_int8_float(a, b, None)


def _eval_section(cfg, frames: FrameSet, outputs: dict) -> dict:
    out: dict = {}
    if not frames.labels:
        out["bench_frames"] = {"skipped": f"{frames.folder} has no labels.json"}
    elif any(n not in frames.labels for n in frames.names):
        out["bench_frames"] = {"skipped": f"{frames.folder}/labels.json does not label every image"}
    elif "ours" not in outputs or "float_tflite" not in outputs:
        out["bench_frames"] = {"skipped": "needs both the ours and float_tflite rows"}
    else:
        mp = cfg.policy.max_people
        a = gate_rates(outputs["ours"], frames, mp)
        b = gate_rates(outputs["float_tflite"], frames, mp)
        from maskgate.edge.policy import frame_passes

        same = np.mean([frame_passes(x.faces, mp)[0] == frame_passes(y.faces, mp)[0]
                        for x, y in zip(outputs["ours"], outputs["float_tflite"])])
        out["bench_frames"] = {"frames": len(frames), "all_frames_of_folder": frames.complete,
                               **compare_int8_float(a, b, float(same)),
                               "how": "maskgate.evaluation.rates on the verdicts of the timed frames (ours vs float_tflite)"}
        if "ours_300x300" in outputs:
            # does the doorway allow the smaller detector input?  The same frames through both sizes.
            big = gate_rates(outputs["ours_300x300"], frames, mp)
            out["detector_size"] = {"gate_size": _size_summary(a), "300x300": _size_summary(big)}
    rec = recorded_eval(cfg)
    out["manifest"] = rec if rec is not None else {"skipped": "no int8/float gate metrics in the classifier's manifest entry"}
    if rec is not None:
        out["manifest"]["how"] = "recorded by `maskgate convert` (metrics.gate_encounters of the classifier's manifest entry)"
    return out


def _size_summary(r: dict) -> dict:
    pts = (lambda v: round(100.0 * v, 2) if v is not None else None)
    return {"false_accept_points": pts(r["false_accept_rate"]), "false_reject_points": pts(r["false_reject_rate"]),
            "no_face_found": sum(x["no_face_found"] for x in r["by_label"].values()), "frames": r["frames"]}
