"""Why each masked encounter that no p_mask lets in stays locked, frame by frame, with cv2.dnn beside it.

  maskgate eval --data ../shared/data/encounters --models int8 --sweep --json build/eval_sweep.json
  .venv/bin/python benchmarks/studies/never_unlocked.py build/eval_sweep.json

(docs/training.md, "The detector's fine-tuning over seeds": the breakdown of the 28.)
"""
import json, sys, cv2
from pathlib import Path
from maskgate import datasets
from maskgate.edge.runtime import load_model
from maskgate.edge.detector import FaceDetector
from maskgate.edge.classifier import MaskClassifier
from maskgate.edge.analysis import FrameAnalyzer, select_faces
r = json.load(open(sys.argv[1]))['models']['int8']['sweep']['unlock_points']
frames = {f.path.name: f for f in datasets.read_frames(Path('../shared/data/encounters'))}
never = [n for n, v in r.items() if v is None and frames[n].label == 'with_mask']
det = FaceDetector(load_model(Path('models/face_detector_ft_224x168_int8.tflite'), threads=1, edgetpu='off'), score_threshold=0.02)
clf = MaskClassifier(load_model(Path('models/mask_classifier_int8.tflite'), threads=1, edgetpu='off'),
                     labels=['with_mask','without_mask','not_face'], margin=0.2, threshold=0.774)
an = FrameAnalyzer(det, clf, min_face=80, mask_threshold=0.774)
net = cv2.dnn.readNetFromTensorflow('../shared/models/face_detector/opencv_face_detector_uint8.pb', '../shared/models/face_detector/opencv_face_detector.pbtxt')
reasons = {}
for n in never:
    img = cv2.imread(str(frames[n].path)); H, W = img.shape[:2]
    boxes, scores = det.detect(img, 0.02)
    desc = []
    for b, s in list(zip(boxes, scores))[:4]:
        w = b[2]-b[0]
        desc.append(f"s={s:.2f} w={w:.0f}")
    cands = an.candidates(img, 0.5)
    faces, rej = select_faces(cands, mask_index=0, not_face_index=2, mask_threshold=0.0, other_face_score=0.5)
    c_low = an.candidates(img, 0.05)
    net.setInput(cv2.dnn.blobFromImage(img, 1.0, (300, 300), (104, 177, 123)))
    o = net.forward()[0,0]; o = o[o[:,2] > 0.5]
    ref = [f"{s:.2f} w={(x2-x1)*W:.0f}" for _,_,s,x1,y1,x2,y2 in o[:3]]
    if not len(boxes): why = 'nothing >=0.02'
    elif not cands and not c_low: why = 'no door-sized box >=0.05'
    elif not cands: why = 'door-sized only below 0.5'
    elif rej and not faces: why = 'classifier: not a face'
    elif len(faces) > 1: why = 'two people'
    else: why = 'other'
    reasons.setdefault(why, []).append(n)
    print(n, f"{W}x{H}", why, '| det:', desc, '| cands0.5:', [(c.score, c.box[2]-c.box[0], c.probs.round(2).tolist()) for c in cands][:3], '| cv2:', ref)
print({k: len(v) for k, v in reasons.items()})
