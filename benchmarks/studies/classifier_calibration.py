"""int8 vs float of the classifier under four calibration sets, on the validation crops (colour and grayscale).

  .venv/bin/python benchmarks/studies/classifier_calibration.py build/classifier/mask_classifier.keras

Needs the Keras model of a `maskgate train` run and its crop set in build/crops (docs/training.md,
"int8 against float: where the gap is").
"""
import sys, json, time
from pathlib import Path
import numpy as np
from maskgate.convert.classifier import _probs
from maskgate.convert.tflite_export import to_tflite
from maskgate.models import classifier_data as cd
from maskgate.models.mask_classifier import load_mask_classifier
from maskgate.models.train import device_crops, grayscale_crops
keras_path = Path(sys.argv[1]); out = Path('build/studies/classifier_calibration'); out.mkdir(parents=True, exist_ok=True)
z = np.load(sorted(Path('build/crops').glob('crops_*.npz'))[0])
data = {k: z[k] for k in ('images', 'labels', 'kinds', 'val')}
model = load_mask_classifier(keras_path)
labels = list(cd.CLASSES)
val = cd.threshold_split(data['kinds'], data['val'])
vc = device_crops(data['images'][val]); vg = grayscale_crops(vc)
fl = out / 'float.tflite'; fl.write_bytes(to_tflite(model))
pf, pfg = _probs(fl, vc, labels, False)[:, 0], _probs(fl, vg, labels, False)[:, 0]
src = np.char.partition(data['kinds'].astype(str), '/')[:, 0]
T = 0.774
res = {}
for name, count, sources, gray in [('base320', 320, None, 0.0), ('recipe320', 320, ('faces', 'wild'), 0.0),
                                   ('recipe1000', 1000, ('faces', 'wild'), 0.0), ('recipe1000g', 1000, ('faces', 'wild'), 0.2)]:
    rng = np.random.default_rng(0)
    pool = np.flatnonzero(~data['val'] & (np.isin(src, sources) if sources else True))
    idx = rng.choice(pool, count, replace=False)
    calib = device_crops(data['images'][idx]).astype(np.float32)
    g = rng.random(count) < gray
    if g.any(): calib[g] = grayscale_crops(calib[g].astype(np.uint8)).astype(np.float32)
    t = time.time(); p = out / f'{name}.tflite'; p.write_bytes(to_tflite(model, lambda: (c[None] for c in calib)))
    pi, pig = _probs(p, vc, labels, False)[:, 0], _probs(p, vg, labels, False)[:, 0]
    d, dg = np.abs(pi - pf), np.abs(pig - pfg)
    res[name] = dict(mean_abs=round(float(d.mean()), 4), p99=round(float(np.quantile(d, .99)), 4),
                     mean_abs_gray=round(float(dg.mean()), 4), p99_gray=round(float(np.quantile(dg, .99)), 4),
                     flips=int(np.sum((pi >= T) != (pf >= T))), flips_gray=int(np.sum((pig >= T) != (pfg >= T))),
                     secs=round(time.time() - t))
    print(name, res[name], flush=True)
json.dump(res, open(out / 'results.json', 'w'), indent=1)
