"""The mask classifier on the device: face crop → class probabilities (``p_mask`` first).

Labels, the crop margin and the decision threshold are the classifier's, recorded in the manifest
beside the model by ``maskgate convert``; they are not guessed here.
"""

from __future__ import annotations

import cv2
import numpy as np

from maskgate.edge.crops import face_crop
from maskgate.edge.runtime import TFLiteModel
from maskgate.errors import ModelError


class MaskClassifier:
    def __init__(self, model: TFLiteModel, *, labels: list[str], margin: float, threshold: float,
                 flip_average: bool = False):
        self.model = model
        self.flip_average = flip_average
        shape = model.input_shape
        if len(shape) != 4 or shape[1] != shape[2] or shape[3] != 3:
            raise ModelError(f"{model.path.name}: a mask classifier takes a square (1, S, S, 3) crop, not {shape}")
        self.size = shape[1]
        if "with_mask" not in labels:
            raise ModelError(f"{model.path.name}: labels {labels} lack 'with_mask'")
        n_out = int(model.output_details[0]["shape"][-1])
        if n_out != len(labels):
            raise ModelError(f"{model.path.name}: {n_out} outputs but {len(labels)} labels")
        self.labels = list(labels)
        self.mask_index = self.labels.index("with_mask")
        self.not_face_index = self.labels.index("not_face") if "not_face" in self.labels else None
        self.margin = margin
        self.threshold = threshold
        self._q = model.output_quant(0)
        self._float_input = not np.issubdtype(model.input_dtype, np.integer)

        self._crop = np.empty((self.size, self.size, 3), np.uint8)

    def classify(self, frame: np.ndarray, box) -> np.ndarray:
        """Probabilities of each label for the face at ``box`` (frame pixels).

        With ``flip_average`` (recorded in the manifest when the thresholds were chosen that way) the
        crop and its mirror image are both classified and the probabilities averaged: a face is
        symmetric, its errors less so.
        """
        face_crop(frame, box, self.margin, self.size, out=self._crop)
        probs = self._run(self._crop, mirrored=False)
        if self.flip_average:
            probs = (probs + self._run(self._crop, mirrored=True)) / 2.0
        return probs

    def _run(self, crop: np.ndarray, *, mirrored: bool) -> np.ndarray:
        buf = self.model.input_buffer()
        if self._float_input:
            buf[...] = crop[:, ::-1] if mirrored else crop
        elif mirrored:
            cv2.flip(crop, 1, dst=buf)
        else:
            buf[...] = crop
        del buf
        self.model.invoke()
        out = self.model.output(0)
        q = self._q
        return (out.astype(np.float32) - q.zero_point) * q.scale if q.is_quantized else out.astype(np.float32)
