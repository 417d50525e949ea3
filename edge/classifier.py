"""The mask classifier on the device: face crop → class probabilities (``p_mask`` first).

Labels, the crop margin and the decision threshold are the classifier's, recorded in the manifest
beside the model by ``maskgate convert``; they are not guessed here.
"""

from __future__ import annotations

import numpy as np

from maskgate.edge.crops import face_crop
from maskgate.edge.runtime import TFLiteModel
from maskgate.errors import ModelError


class MaskClassifier:
    def __init__(self, model: TFLiteModel, *, labels: list[str], margin: float, threshold: float):
        self.model = model
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

    def classify(self, frame: np.ndarray, box) -> np.ndarray:
        """Probabilities of each label for the face at ``box`` (frame pixels)."""
        buf = self.model.input_buffer()
        if self._float_input:
            buf[...] = face_crop(frame, box, self.margin, self.size)
        else:
            face_crop(frame, box, self.margin, self.size, out=buf)
        del buf
        self.model.invoke()
        out = self.model.output(0)
        q = self._q
        return (out.astype(np.float32) - q.zero_point) * q.scale if q.is_quantized else out.astype(np.float32)
