"""What sets the door's p_mask: the crop-level bound in colour and without colour, taken apart.

  .venv/bin/python benchmarks/studies/p_mask_bounds.py [CLASSIFIER_TFLITE]

The crop-level rule (models/train.py, ``choose_threshold``) takes the higher of two thresholds: the
lowest at which at most 0.5 % of the must-not-pass validation crops pass in colour, and the same
without colour.  This prints each on its own, the negatives that set it and what they are, and the
masked crops each threshold refuses.  The gate-level bounds are printed by
``maskgate eval --data ../shared/data/encounters --models int8 --face-free --sweep`` (colour frames
and face-free frames) and ``... --grayscale --sweep`` (the encounters without colour).
Needs the crop set in build/crops (``maskgate train`` builds it; docs/training.md, "What sets p_mask").
"""
import sys
from pathlib import Path
import numpy as np
from maskgate.convert.classifier import _probs
from maskgate.models import classifier_data as cd
from maskgate.models.train import TrainSettings, _lowest_threshold, device_crops, grayscale_crops

tflite = Path(sys.argv[1] if len(sys.argv) > 1 else 'models/mask_classifier_int8.tflite')
z = np.load(sorted(Path('build/crops').glob('crops_*.npz'))[-1])
data = {k: z[k] for k in ('images', 'labels', 'kinds', 'val')}
val = cd.threshold_split(data['kinds'], data['val'])
crops = device_crops(data['images'][val])
labels, kinds = data['labels'][val], data['kinds'][val]
neg = labels != cd.MASK
max_fa = TrainSettings().max_false_accept
print(f'{tflite}: {int(neg.sum())} must-not-pass and {int((~neg).sum())} masked validation crops')
for mode, x in (('colour', crops), ('without colour', grayscale_crops(crops))):
    p = _probs(tflite, x, list(cd.CLASSES), False)[:, cd.MASK]
    t = _lowest_threshold(p[neg], max_fa)
    print(f'{mode}: the rule alone allows p_mask {t:.3f} (the rule never goes below 0.5); '
          f'masked crops below max(t, 0.5): {np.mean(p[~neg] < max(t, 0.5)):.1%}')
    for i in np.argsort(-np.where(neg, p, -1))[:6]:
        print(f'    {p[i]:.3f}  {kinds[i]}')
