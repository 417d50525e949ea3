"""The face detector on the device: the res10 SSD TFLite model plus :mod:`maskgate.edge.ssd`.

Works with the int8 model (uint8 pixel input, int8 outputs) and with the float model alike.  Per
frame it resizes the frame straight into the interpreter's input buffer, runs the network, turns
the face-class scores to float (a few thousand values), and decodes only the boxes whose score
passes the threshold.

``zoom_out`` (above 1) shows the network the frame smaller, centred on a grey border, as if the
camera were further away.  res10 finds faces that fill much of its input less reliably than
mid-sized ones, and a doorway camera mounted close to the door shows exactly such faces
(measured in the README: "A camera close to the door").  Boxes come back in frame coordinates.
"""

from __future__ import annotations

import cv2
import numpy as np

from maskgate.edge.runtime import TFLiteModel
from maskgate.edge.ssd import SSDDecoder
from maskgate.errors import ModelError

#: Grey of the border around a zoomed-out frame (the encounters' padding, a neutral value for res10).
ZOOM_BORDER = 127
MAX_ZOOM_OUT = 3.0


class FaceDetector:
    def __init__(self, model: TFLiteModel, *, score_threshold: float = 0.5, nms_threshold: float = 0.45,
                 zoom_out: float = 1.0):
        if not 1.0 <= zoom_out <= MAX_ZOOM_OUT:
            raise ValueError(f"zoom_out must be between 1 and {MAX_ZOOM_OUT}, not {zoom_out}")
        self.model = model
        shape = model.input_shape
        if len(shape) != 4 or shape[0] != 1 or shape[3] != 3:
            raise ModelError(f"{model.path.name}: a face detector takes (1, H, W, 3) BGR input, not {shape}")
        self.height, self.width = shape[1], shape[2]
        self.decoder = SSDDecoder(self.width, self.height, nms_threshold=nms_threshold)
        self.score_threshold = score_threshold
        # where the frame lies in the network input when zoomed out: x0, y0, width, height (input pixels)
        self.zoom_out = zoom_out
        iw, ih = int(round(self.width / zoom_out)), int(round(self.height / zoom_out))
        self._inner = ((self.width - iw) // 2, (self.height - ih) // 2, iw, ih)
        self._small = np.empty((ih, iw, 3), np.uint8) if zoom_out > 1.0 else None
        # network-input normalised → frame normalised: x * scale - shift
        self._zoom_scale = np.array([self.width / iw, self.height / ih] * 2, np.float32)
        self._zoom_shift = np.array([self._inner[0] / iw, self._inner[1] / ih] * 2, np.float32)
        self._loc_i = self._conf_i = None
        for i, d in enumerate(model.output_details):
            last = int(d["shape"][-1])
            if last == 4:
                self._loc_i = i
            elif last == 2:
                self._conf_i = i
        if self._loc_i is None or self._conf_i is None:
            raise ModelError(f"{model.path.name}: expected outputs loc (1, N, 4) and conf (1, N, 2)")
        n = int(model.output_details[self._loc_i]["shape"][1])
        if n != self.decoder.num_priors:
            raise ModelError(
                f"{model.path.name}: {n} boxes but a {self.width}x{self.height} res10 has "
                f"{self.decoder.num_priors} priors; not OpenCV's res10 face detector"
            )
        self._loc_q = model.output_quant(self._loc_i)
        self._conf_q = model.output_quant(self._conf_i)
        self._float_input = not np.issubdtype(model.input_dtype, np.integer)
        if not self._float_input and model.input_quant.is_quantized and (
            model.input_quant.scale != 1.0 or model.input_quant.zero_point != 0
        ):
            raise ModelError(f"{model.path.name}: the int8 detector must take raw uint8 pixels (scale 1, zero point 0)")

    def run(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw network outputs for ``frame`` (BGR uint8): ``loc (N, 4)`` as stored and face scores ``(N,)`` float."""
        buf = self.model.input_buffer()
        if self._small is not None:
            x0, y0, iw, ih = self._inner
            cv2.resize(frame, (iw, ih), dst=self._small, interpolation=cv2.INTER_AREA)
            buf[...] = ZOOM_BORDER
            buf[y0:y0 + ih, x0:x0 + iw] = self._small
        elif self._float_input:
            buf[...] = cv2.resize(frame, (self.width, self.height), interpolation=cv2.INTER_LINEAR)
        else:
            cv2.resize(frame, (self.width, self.height), dst=buf, interpolation=cv2.INTER_LINEAR)
        del buf
        self.model.invoke()
        loc = self.model.output(self._loc_i)
        conf = self.model.output(self._conf_i)[:, 1]
        q = self._conf_q
        scores = (conf.astype(np.float32) - q.zero_point) * q.scale if q.is_quantized else conf
        return loc, scores

    def detect_normalized(self, frame: np.ndarray, score_threshold: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Faces as cv2.dnn reports them: boxes normalised to the frame, unclipped, best first."""
        loc, scores = self.run(frame)
        return self.decode(loc, scores, score_threshold)

    def decode(self, loc: np.ndarray, scores: np.ndarray, score_threshold: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`run`'s outputs → boxes normalised to the frame and scores above the threshold, after NMS (no inference)."""
        thr = self.score_threshold if score_threshold is None else score_threshold
        q = self._loc_q
        boxes, kept = self.decoder.decode(
            loc, scores, thr, loc_scale=q.scale if q.is_quantized else None, loc_zero_point=q.zero_point
        )
        if self._small is not None and len(boxes):
            boxes = boxes * self._zoom_scale - self._zoom_shift
        return boxes, kept

    def detect(self, frame: np.ndarray, score_threshold: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Faces in ``frame``: ``(boxes (K, 4) float32 in frame pixels [x1, y1, x2, y2], scores (K,))``, best first.

        Boxes are clipped to the frame; boxes that lie entirely outside it (the graph's last heads place
        priors beyond the image) are dropped.
        """
        boxes, scores = self.detect_normalized(frame, score_threshold)
        return to_frame_pixels(boxes, scores, frame.shape[1], frame.shape[0])


def to_frame_pixels(boxes: np.ndarray, scores: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Normalised boxes → frame pixels, clipped; boxes with less than 2 px left inside are dropped."""
    if len(boxes) == 0:
        return boxes.reshape(0, 4), scores
    size = np.array([width, height, width, height], dtype=np.float32)
    px = boxes * size
    np.clip(px, 0, size, out=px)
    ok = (px[:, 2] - px[:, 0] >= 2) & (px[:, 3] - px[:, 1] >= 2)
    return px[ok], scores[ok]
