"""Pictures of a crowd: each face with its mask label, the pairs standing too close, a legend.

Made for people to look at, with OpenCV alone (no plotting library on the device):

* colours from the Okabe–Ito palette, which stays distinguishable with the common forms of colour
  blindness — blue for a mask, vermillion for no mask — and never colour alone: every face carries
  its label in words (``mask 97%`` / ``no mask 88%``), and a pair closer than the minimum distance
  is a *dashed* yellow-and-black line with the distance written on it (each person joined to the
  nearest one too close, so that a tight group is not a web of lines; the header counts every pair);
* labels on a filled box, sized for the picture, placed where they do not cover another label or
  face when there is such a place;
* small pictures are enlarged (longest side at least ``min_long_side``) so that labels stay readable;
* a header above the picture — never over it — with the summary (people, masked share, violations)
  and the legend.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from maskgate.edge.crowd import CrowdReport

# Okabe & Ito (2008), "Color Universal Design", as BGR
MASKED = (178, 114, 0)  # blue #0072B2
UNMASKED = (0, 94, 213)  # vermillion #D55E00
TOO_CLOSE = (66, 228, 240)  # yellow #F0E442, always drawn dashed over black
BLACK = (0, 0, 0)
WHITE = (255, 255, 255)
HEADER_BG = (245, 245, 245)
TEXT_ON = {MASKED: WHITE, UNMASKED: BLACK, TOO_CLOSE: BLACK}  # the readable ink on each fill

FONT = cv2.FONT_HERSHEY_SIMPLEX
#: pictures smaller than this (longest side, pixels) are enlarged before drawing
DEFAULT_MIN_LONG_SIDE = 1280


@dataclass(frozen=True)
class Layout:
    scale: float  # picture pixels -> output pixels
    width: int  # of the output picture
    height: int  # of the output picture, header included
    header: int  # header height, above the picture
    text_px: int  # height of label text
    line: int  # line thickness


def layout(image_width: int, image_height: int, min_long_side: int = DEFAULT_MIN_LONG_SIDE) -> Layout:
    """Where everything goes for a picture of this size."""
    long_side = max(image_width, image_height)
    scale = max(1.0, min_long_side / long_side) if min_long_side else 1.0
    w, h = int(round(image_width * scale)), int(round(image_height * scale))
    text_px = max(12, int(round(max(w, h) / 75)))
    margin = max(6, text_px // 2)
    legend_h = _label_rect("mask", cv2.getFontScaleFromHeight(FONT, text_px, 1), _thickness(text_px))[1]
    header = margin + text_px + margin + legend_h + margin
    return Layout(scale, w, h + header, header, text_px, max(2, int(round(text_px / 7))))


def _thickness(text_px: int) -> int:
    return max(1, int(round(text_px / 12)))


def face_label(face) -> str:
    """``"mask 97%"`` / ``"no mask 88%"``: the call and how sure the classifier is of it."""
    if face.masked:
        return f"mask {100 * face.p_mask:.0f}%"
    return f"no mask {100 * (1 - face.p_mask):.0f}%"


def draw_crowd(image: np.ndarray, faces, report: CrowdReport, *, min_long_side: int = DEFAULT_MIN_LONG_SIDE,
               note: str = "") -> np.ndarray:
    """A new picture: ``image`` (BGR) enlarged if small, with ``faces`` and ``report`` drawn on it.

    ``faces`` are in ``image`` pixels, in the order of ``report`` (its pair indices refer to them).
    ``note`` is added to the header's summary line (e.g. the file name).
    """
    h0, w0 = image.shape[:2]
    lay = layout(w0, h0, min_long_side)
    canvas = np.empty((lay.height, lay.width, 3), np.uint8)
    canvas[: lay.header] = HEADER_BG
    canvas[lay.header - 1] = (200, 200, 200)
    body = canvas[lay.header:]
    interp = cv2.INTER_CUBIC if lay.scale > 1 else cv2.INTER_AREA
    if lay.scale != 1.0:
        cv2.resize(image, (lay.width, lay.height - lay.header), dst=body, interpolation=interp)
    else:
        body[:] = image
    font_scale = cv2.getFontScaleFromHeight(FONT, lay.text_px, 1)
    thick = _thickness(lay.text_px)

    def to_canvas(box) -> tuple[int, int, int, int]:
        x1, y1, x2, y2 = (float(v) * lay.scale for v in box)
        return int(round(x1)), int(round(y1)) + lay.header, int(round(x2)), int(round(y2)) + lay.header

    boxes = [to_canvas(f.box) for f in faces]
    centres = [((b[0] + b[2]) // 2, (b[1] + b[3]) // 2) for b in boxes]

    # pairs first, faces over them
    shown = lines_to_draw(report)
    for p in shown:
        _dashed_line(canvas, centres[p.a], centres[p.b], lay.line)
    for f, b in zip(faces, boxes):
        colour = MASKED if f.masked else UNMASKED
        cv2.rectangle(canvas, b[:2], b[2:], WHITE, lay.line + 2, cv2.LINE_AA)
        cv2.rectangle(canvas, b[:2], b[2:], colour, lay.line, cv2.LINE_AA)

    occupied: list[tuple[int, int, int, int]] = []
    bounds = (0, lay.header, lay.width, lay.height)
    # labels of the largest faces first: they get the best places
    for i in sorted(range(len(faces)), key=lambda i: -(boxes[i][2] - boxes[i][0])):
        f, b = faces[i], boxes[i]
        colour = MASKED if f.masked else UNMASKED
        others = [o for j, o in enumerate(boxes) if j != i]
        rect, text = _place_label(face_label(f), b, font_scale, thick, bounds, occupied + others,
                                  short="mask" if f.masked else "no mask")
        _text_box(canvas, rect, text, colour, font_scale, thick)
        occupied.append(rect)
    for p in shown:
        (ax, ay), (bx, by) = centres[p.a], centres[p.b]
        text = f"{p.distance_m:.1f} m"
        small = font_scale * 0.9
        (tw, th), base = cv2.getTextSize(text, FONT, small, thick)
        pad = max(2, th // 4)
        mx, my = (ax + bx) // 2, (ay + by) // 2
        rect = (mx - tw // 2 - pad, my - th // 2 - pad, mx + tw // 2 + pad, my + th // 2 + base + pad)
        if not any(_overlap(rect, o) for o in occupied) and _inside(rect, bounds):
            _text_box(canvas, rect, text, TOO_CLOSE, small, thick)
            occupied.append(rect)

    _header(canvas, lay, report, font_scale, thick, note)
    return canvas


def lines_to_draw(report: CrowdReport):
    """The pairs to draw: each person too close to someone is joined to their nearest such neighbour.

    Every violating person gets a line, without the web of lines a tight group would make (n people
    standing close make n*(n-1)/2 pairs); the header counts every pair.
    """
    covered: set[int] = set()
    shown = []
    for p in report.pairs:  # closest first
        if p.a not in covered or p.b not in covered:
            shown.append(p)
            covered.update((p.a, p.b))
    return shown


# -- pieces ---------------------------------------------------------------------------------------- #


def _dashed_line(img, a, b, thickness: int) -> None:
    """Yellow dashes over a black line: visible on light and dark backgrounds, unmistakably not a box."""
    cv2.line(img, a, b, BLACK, thickness + 2, cv2.LINE_AA)
    length = math.hypot(b[0] - a[0], b[1] - a[1])
    if length < 1:
        return
    dash = max(8, 5 * thickness)
    n = int(length // (2 * dash)) + 1
    for k in range(n):
        t0 = (2 * k * dash) / length
        t1 = min(1.0, (2 * k + 1) * dash / length)
        if t0 >= 1.0:
            break
        p0 = (int(round(a[0] + (b[0] - a[0]) * t0)), int(round(a[1] + (b[1] - a[1]) * t0)))
        p1 = (int(round(a[0] + (b[0] - a[0]) * t1)), int(round(a[1] + (b[1] - a[1]) * t1)))
        cv2.line(img, p0, p1, TOO_CLOSE, thickness, cv2.LINE_AA)


def _overlap(r, s) -> bool:
    return r[0] < s[2] and s[0] < r[2] and r[1] < s[3] and s[1] < r[3]


def _inside(r, bounds) -> bool:
    return r[0] >= bounds[0] and r[1] >= bounds[1] and r[2] <= bounds[2] and r[3] <= bounds[3]


def _label_rect(text, font_scale, thick) -> tuple[int, int, int]:
    (tw, th), base = cv2.getTextSize(text, FONT, font_scale, thick)
    pad = max(3, th // 3)
    return tw + 2 * pad, th + base + 2 * pad, pad


def _place_label(text, box, font_scale, thick, bounds, obstacles, short: str):
    """The first free spot for the label (above, below, beside the face), the long text before the short;
    if there is none, above the face (clamped to the picture)."""
    x1, y1, x2, y2 = box
    for t in (text, short):
        w, h, _ = _label_rect(t, font_scale, thick)
        candidates = [
            (x1, y1 - h), (x1, y2), (x2 - w, y1 - h), (x2 - w, y2),  # above / below, left or right aligned
            (x2 + 2, y1), (x1 - w - 2, y1),  # beside
        ]
        for cx, cy in candidates:
            r = (cx, cy, cx + w, cy + h)
            if _inside(r, bounds) and not any(_overlap(r, o) for o in obstacles):
                return r, t
    w, h, _ = _label_rect(text, font_scale, thick)
    cx = min(max(x1, bounds[0]), bounds[2] - w)
    cy = y1 - h if y1 - h >= bounds[1] else min(y2, bounds[3] - h)
    return (cx, cy, cx + w, cy + h), text


def _text_box(img, rect, text, fill, font_scale, thick) -> None:
    x1, y1, x2, y2 = rect
    cv2.rectangle(img, (x1, y1), (x2 - 1, y2 - 1), fill, -1)
    cv2.rectangle(img, (x1, y1), (x2 - 1, y2 - 1), BLACK if fill != UNMASKED else WHITE, 1)
    (tw, th), base = cv2.getTextSize(text, FONT, font_scale, thick)
    tx = x1 + (x2 - x1 - tw) // 2
    ty = y1 + (y2 - y1 + th - base) // 2
    cv2.putText(img, text, (tx, ty), FONT, font_scale, TEXT_ON[fill], thick, cv2.LINE_AA)


def _fit_scale(text: str, font_scale: float, thick: int, width: int) -> float:
    tw = cv2.getTextSize(text, FONT, font_scale, thick)[0][0]
    return font_scale if tw <= width else font_scale * width / tw


def _header(img, lay: Layout, report: CrowdReport, font_scale: float, thick: int, note: str) -> None:
    margin = max(6, lay.text_px // 2)
    avail = lay.width - 2 * margin
    summary = report.summary()
    if note:
        summary = f"{note}: {summary}"
    s = _fit_scale(summary, font_scale, thick + 1, avail)
    y = margin + lay.text_px
    cv2.putText(img, summary, (margin, y), FONT, s, BLACK, thick + 1, cv2.LINE_AA)

    # legend: [mask] [no mask] --- closer than X m (from face size)
    items = [("mask", MASKED), ("no mask", UNMASKED)]
    pair_text = f"closer than {report.min_distance_m:g} m (estimated from face size)"
    sw = lay.text_px * 3  # width of the dashed sample
    widths = [_label_rect(t, font_scale, thick)[0] for t, _ in items]
    total = sum(widths) + margin * len(items) + sw + margin + cv2.getTextSize(pair_text, FONT, font_scale, thick)[0][0]
    s = font_scale * min(1.0, avail / total)
    x = margin
    y0 = y + margin
    for text, colour in items:
        w, h, _ = _label_rect(text, s, thick)
        _text_box(img, (x, y0, x + w, y0 + h), text, colour, s, thick)
        x += w + margin
    h = _label_rect("mask", s, thick)[1]
    cy = y0 + h // 2
    sw = int(sw * s / font_scale)
    _dashed_line(img, (x, cy), (x + sw, cy), lay.line)
    x += sw + margin
    (tw, th), base = cv2.getTextSize(pair_text, FONT, s, thick)
    cv2.putText(img, pair_text, (x, cy + th // 2), FONT, s, BLACK, thick, cv2.LINE_AA)
