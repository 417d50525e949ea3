"""The fine-tuned detector converted with several calibration sets, each judged at the gate against float.

  .venv/bin/python benchmarks/studies/detector_calibration.py build/detector/ft_s0 models/mask_classifier_int8.tflite P_MASK [VARIANTS]

Needs a `maskgate detector train` run (its float weights); P_MASK is the classifier's gate-level
threshold; VARIANTS a comma-separated subset of the names below (docs/training.md, "int8 against float").
"""
import sys, json, time
from pathlib import Path
import numpy as np
from maskgate.convert.calibration import detector_frames
from maskgate.convert.finetuned_detector import face_detector_files
from maskgate.convert.tflite_export import to_tflite
from maskgate.models.detector_finetune import load_finetuned, WEIGHTS_NAME
from maskgate.models.detector_data import wild_training_images, make_frames
from maskgate.edge.runtime import load_model
from maskgate.edge.detector import FaceDetector
from maskgate.edge.classifier import MaskClassifier
from maskgate.edge.analysis import FrameAnalyzer
from maskgate.evaluation import evaluate_gate, frames_from_folder, gate_outcomes
from maskgate.facefree import face_free_frames
shared = Path('../shared'); run = Path(sys.argv[1]); out = Path('build/studies/detector_calibration'); out.mkdir(parents=True, exist_ok=True)
clf_path = Path(sys.argv[2]); p_mask = float(sys.argv[3])
pb, _ = face_detector_files(shared)
model = load_finetuned(run / WEIGHTS_NAME, 224, 168, pb_path=pb)
enc = list(frames_from_folder(shared / 'data' / 'encounters'))
ff = [(n, 'no_face', '', f) for n, f in face_free_frames(shared)]
def train_doorway(n, seed):
    fr = make_frames(wild_training_images(shared), (224, 168), framings=2, seed=seed)
    idx = np.random.default_rng(seed).choice(len(fr.images), n, replace=False)
    return [fr.images[i][None].astype(np.float32) for i in idx]
variants = {'float': None,
            'current320': lambda: detector_frames(shared, 224, 168, 320),
            'current1000': lambda: detector_frames(shared, 224, 168, 1000),
            'traindoor320': lambda: train_doorway(320, 0),
            'traindoor1000': lambda: train_doorway(1000, 0),
            'current100': lambda: detector_frames(shared, 224, 168, 100),
            'current160': lambda: detector_frames(shared, 224, 168, 160),
            'traindoor100': lambda: train_doorway(100, 0),
            'traindoor160': lambda: train_doorway(160, 0),
            'current320s1': lambda: detector_frames(shared, 224, 168, 320, seed=1),
            'current320s2': lambda: detector_frames(shared, 224, 168, 320, seed=2)}
only = sys.argv[4].split(',') if len(sys.argv) > 4 else list(variants)
res = {}
for name in only:
    make = variants[name]
    p = out / f'{name}.tflite'
    t = time.time()
    if make is None: p.write_bytes(to_tflite(model))
    else:
        frames = make(); p.write_bytes(to_tflite(model, lambda: frames))
    det = FaceDetector(load_model(p, threads=1, edgetpu='off'), score_threshold=0.5)
    clf = MaskClassifier(load_model(clf_path, threads=1, edgetpu='off'), labels=['with_mask', 'without_mask', 'not_face'], margin=0.2, threshold=p_mask)
    an = FrameAnalyzer(det, clf, min_face=80, mask_threshold=p_mask)
    g = evaluate_gate(an, enc)
    ffo = gate_outcomes(an, ff)
    a, h = g['all'], g['held_out_scenes']
    res[name] = dict(fr=a['false_rejects'], fr_held=h['false_rejects'], fa=a['false_accepts'],
                     noface=a['by_label']['with_mask']['no_face_found'], ff_unlock=sum(o.unlocked for o in ffo),
                     ff_faces=sum(o.faces > 0 for o in ffo), secs=round(time.time() - t))
    print(name, res[name], flush=True)
json.dump(res, open(out / f'results_{only[0]}.json', 'w'), indent=1)
