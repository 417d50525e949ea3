"""The report: targets met or missed, and the table ``maskgate bench`` prints."""

from __future__ import annotations

from maskgate.bench.common import EVAL_TARGET_POINTS, GATE_RSS_TARGET_MB, IDLE_TARGET_PERCENT, TARGETS
from maskgate.bench.web_page import WEB_TARGET_DROP_PERCENT


def _targets(report: dict) -> dict:
    p = report["pipelines"]
    out = {}
    note = None if report["threads"] == 1 else "the targets are defined at 1 thread; this run used more"
    for name, want in TARGETS.items():
        entry = p.get(name, {})
        r = entry.get("ratio_median_vs_ours")
        out[f"{name}_over_ours"] = {"want_at_least": want, "got": r, "met": (r >= want) if r is not None else None}
    idle = report.get("gate", {}).get("idle", {}).get("cpu_percent_of_one_core")
    out["idle_cpu_percent"] = {"want_at_most": IDLE_TARGET_PERCENT, "got": idle,
                               "met": (idle <= IDLE_TARGET_PERCENT) if idle is not None else None}
    rss = [v.get("peak_rss_mb") for v in report.get("gate", {}).values() if isinstance(v, dict) and v.get("peak_rss_mb")]
    got = max(rss) if rss else None
    out["gate_peak_rss_mb"] = {"want_at_most": GATE_RSS_TARGET_MB, "got": got,
                               "met": (got <= GATE_RSS_TARGET_MB) if got is not None else None}
    # On every frame of the folder the bench's own verdicts are `maskgate eval`'s; on a --limit subset one
    # frame is several points, so the record of `maskgate convert` (all encounters) is used instead.
    ev = report.get("eval", {})
    bf = ev.get("bench_frames", {})
    diff = bf.get("max_abs_difference_points") if bf.get("all_frames_of_folder") else None
    if diff is None:
        diff = ev.get("manifest", {}).get("max_abs_difference_points")
    out["int8_vs_float_points"] = {"want_at_most": EVAL_TARGET_POINTS, "got": diff,
                                   "met": (diff <= EVAL_TARGET_POINTS) if diff is not None else None}
    drop = report.get("gate", {}).get("web_page", {}).get("fps_drop_percent")
    out["web_page_fps_drop_percent"] = {"want_at_most": WEB_TARGET_DROP_PERCENT, "got": drop,
                                        "met": (drop <= WEB_TARGET_DROP_PERCENT) if drop is not None else None}
    if note:
        out["note"] = note
    return out


# ---------------------------------------------------------------------------------------------- #
# The table


def _fmt(v, spec: str = ".1f", none: str = "-") -> str:
    return none if v is None else format(v, spec)


def format_report(report: dict) -> str:
    m = report["machine"]
    w, h = report["frame_size"]
    lines = [
        f"maskgate bench: {report['frames']} frames of {w}x{h} from {report['frames_dir']}, "
        f"{report['threads']} thread{'s' if report['threads'] != 1 else ''}, warm-up {report['warmup']}, "
        f"rows interleaved in blocks of {report['block']} frames" if report.get("block") else "rows one after the other",
        f"machine: {m.get('board') or m['cpu']} ({m['cores']} cores, {m['machine']}); load average "
        f"{report['load_average_at_start'][0]:.2f} at start, {report.get('load_average_at_end', [0])[0]:.2f} at end",
        "",
        f"{'pipeline':<58} {'median ms':>9} {'p95 ms':>8} {'fps':>7} {'RSS MB':>7} {'model MB':>8} {'/ ours':>7}",
    ]
    for name, e in report["pipelines"].items():
        title = e.get("title", name)
        if "skipped" in e:
            lines.append(f"{title:<58} skipped: {e['skipped']}")
            continue
        ratio = "1.00" if name == "ours" else _fmt(e.get("ratio_median_vs_ours"), ".2f")
        lines.append(f"{title:<58} {e['median_ms']:>9.1f} {e['p95_ms']:>8.1f} {e['fps']:>7.1f} "
                     f"{_fmt(e.get('peak_rss_mb'), '.0f'):>7} {e['model_bytes'] / 1e6:>8.2f} {ratio:>7}")
    lines.append("ratios are other / ours of the median per-frame time, in this run; RSS: peak of a child process "
                 f"per row (baseline: python + numpy + OpenCV {_fmt(report.get('baseline_rss_mb'), '.0f')} MB)")
    st = report.get("stages")
    if st:
        lines += ["", f"ours, step by step (median ms over {st['frames']} frames, {st['detections_classified']} detections classified): "
                  f"resize {_fmt(st['preprocess_resize_ms'], '.2f')}, detector {_fmt(st['detector_invoke_ms'], '.2f')}, "
                  f"decode+NMS {_fmt(st['decode_nms_ms'], '.2f')}, crop {_fmt(st['classifier_crop_ms'], '.2f')}, "
                  f"classifier per face {_fmt(st['classifier_per_face_ms'], '.2f')}"]
    ev = report.get("eval")
    if ev:
        lines.append("")
        for part, label in (("bench_frames", "on these frames"), ("manifest", "recorded by maskgate convert")):
            x = ev.get(part, {})
            if "skipped" in x:
                lines.append(f"int8 vs float {label}: skipped ({x['skipped']})")
                continue
            fa, fr = x["false_accept_points"], x["false_reject_points"]
            lines.append(f"int8 vs float {label}: false accepts {_fmt(fa['int8'], '.2f')}% vs {_fmt(fa['float'], '.2f')}%, "
                         f"false rejects {_fmt(fr['int8'], '.2f')}% vs {_fmt(fr['float'], '.2f')}% "
                         f"(largest difference {_fmt(x['max_abs_difference_points'], '.2f')} points)")
        ds = ev.get("detector_size")
        if ds:
            a, b = ds["gate_size"], ds["300x300"]
            lines.append(f"detector size on these frames: gate size false rejects {_fmt(a['false_reject_points'], '.2f')}%, "
                         f"no face found in {a['no_face_found']}; 300x300 false rejects {_fmt(b['false_reject_points'], '.2f')}%, "
                         f"no face found in {b['no_face_found']} (false accepts {_fmt(a['false_accept_points'], '.2f')}% vs "
                         f"{_fmt(b['false_accept_points'], '.2f')}%)")
    g = report.get("gate", {})
    if g.get("rss"):
        lines += ["", f"maskgate run peak RSS: {g['rss']['peak_rss_mb']:.0f} MB ({g['rss']['frames']} frames of a doorway clip "
                  f"with a visitor, {g['rss']['analysed']} analysed)"]
    if g.get("idle"):
        i = g["idle"]
        lines.append(f"idle doorway: {_fmt(i['cpu_s_per_minute'], '.2f')} CPU s per minute = "
                     f"{_fmt(i['cpu_percent_of_one_core'], '.1f')}% of one core ({i['frames']} frames at {i['fps']:g} fps in "
                     f"real time, {i['analysed']} analysed), of which replay decoding "
                     f"{_fmt(i['replay_decode_percent_of_one_core'], '.1f')}% and detector runs "
                     f"~{_fmt(i.get('detector_percent_estimate'), '.1f')}%; peak RSS {i['peak_rss_mb']:.0f} MB")
    if g.get("web_page"):
        w = g["web_page"]
        lines.append(f"installer's page: the gate's CPU per frame {w['cpu_ms_per_frame_page_closed']:.1f} ms with it closed, "
                     f"{w['cpu_ms_per_frame_page_open']:.1f} ms with it open: frame rate drop {w['fps_drop_percent']:.1f}% "
                     f"(wall clock {w['fps_page_closed']:.1f} vs {w['fps_page_open']:.1f} fps; medians of {w['rounds']} rounds "
                     f"of {w['frames']} frames, live view at most {w['live_fps']:g} fps)")
    t = report.get("targets", {})
    if t:
        lines += ["", "targets:"]
        for key, x in t.items():
            if key == "note":
                continue
            bound = f">= {x['want_at_least']}" if "want_at_least" in x else f"<= {x['want_at_most']}"
            state = {True: "met", False: "MISSED", None: "not measured"}[x["met"]]
            lines.append(f"  {key:<24} {bound:<8} got {_fmt(x['got'], '.2f'):>7}  {state}")
        if "note" in t:
            lines.append(f"  ({t['note']})")
    return "\n".join(lines)
