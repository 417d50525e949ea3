"""``maskgate train``: build the crop set, train the mask classifier, report, pick the threshold.

Outputs (in ``build/classifier/`` unless told otherwise): ``mask_classifier.keras``, ``curves.png``
(loss and accuracy per epoch), ``confusion.png`` and ``report.json`` (confusion matrices on the fixed
validation split, the chosen threshold and what it gives).  The threshold is chosen on the
validation split to keep false accepts — a face without a mask, a mask below the nose, or something
that is not a face, scored as masked — at or below ``max_false_accept``, in colour and in grayscale.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from maskgate.models import classifier_data as cd
from maskgate.models._tf import import_keras, import_tensorflow

log = logging.getLogger(__name__)

#: Sampling weight of each kind of example: the rarer, safety-critical kinds are seen more often.
#: faces12k has twice as many pictures as data/faces and is less like a doorway: half weight each.
KIND_WEIGHTS = {
    "faces/with_mask": 1.0,
    "faces/without_mask": 1.0,
    "faces12k/with_mask": 0.5,
    "faces12k/without_mask": 0.5,
    "wild/with_mask": 1.0,
    "wild/without_mask": 2.0,
    "wild/mask_weared_incorrect": 3.0,
    "wild/false_detection": 1.0,
    "wild/background": 0.6,
    "wild/doorway_false_detection": 1.0,
}

#: the kinds of example a synthetic hard negative may be made of (not a mask worn wrongly already)
BARE_FACE_KINDS = ("faces/without_mask", "faces12k/without_mask", "wild/without_mask")


@dataclass
class TrainSettings:
    epochs: int = 24
    batch_size: int = 64
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.05
    epoch_size: int = 8000  # examples drawn per epoch (weighted sampling)
    max_false_accept: float = 0.005
    seed: int = 0
    input_size: int = cd.CROP_SIZE
    sources: tuple[str, ...] = ("faces", "wild", "faces12k")  # which sources' training examples are drawn
    recipe: str = "custom"  # the name in RECIPES these settings came from
    #: how the device runs the model: each face and its mirror image, averaged (two passes a face)
    flip_average: bool = True
    #: > 1: an ensemble (models/ensemble.py) of that many runs of ``member_recipe``, probabilities averaged
    members: int = 1
    member_recipe: str = ""
    #: share of training examples shown without colour (models/augment.py).  Colourless crops set the
    #: door's p_mask: the crop-level rule holds in colour and without, and without colour unmasked
    #: faces score higher (README, "What bounds p_mask"; docs/training.md, "Twice as many colourless examples").
    grayscale: float = 0.2
    #: share of the bare faces drawn that are made into synthetic hard negatives (a mask below the
    #: nose, a hand over the mouth, a smooth surface: models/synthetic.py); 0 trains exactly as before
    synthetic: float = 0.0


#: Named training set-ups compared over seeds (``maskgate train --recipe``, ``maskgate seeds``;
#: docs/training.md has the comparison).  ``v2x2`` is the committed classifier's recipe: two ``v2``
#: runs (40 epochs each) averaged as one model; ``fast`` and ``fast+12k`` draw 24 epochs of examples,
#: the second from data/faces12k too.
RECIPES = {
    "v2": dict(epochs=40, sources=("faces", "wild")),
    # two v2 runs (seeds 2s and 2s+1), averaged, each face seen once: two passes a face, as v2 with its mirror
    "v2x2": dict(epochs=40, sources=("faces", "wild"), members=2, member_recipe="v2", flip_average=False),
    # v2 and v2x2 with twice as many colourless examples (0.4 against 0.2)
    "v2-g40": dict(epochs=40, sources=("faces", "wild"), grayscale=0.4),
    "v2x2-g40": dict(epochs=40, sources=("faces", "wild"), members=2, member_recipe="v2-g40", flip_average=False,
                     grayscale=0.4),
    # v2 and v2x2 with synthetic hard negatives made of 30 % of the bare faces drawn (models/synthetic.py)
    "v2-hn": dict(epochs=40, sources=("faces", "wild"), synthetic=0.3),
    "v2x2-hn": dict(epochs=40, sources=("faces", "wild"), members=2, member_recipe="v2-hn", flip_average=False,
                    synthetic=0.3),
    "fast": dict(sources=("faces", "wild")),
    "fast+12k": dict(),
    "fast+12k-112": dict(input_size=112),
    "v2+12k": dict(epochs=40),
}
DEFAULT_RECIPE = "v2x2"


def recipe_settings(name: str, **overrides) -> TrainSettings:
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r} (known: {', '.join(RECIPES)})")
    return TrainSettings(**{**RECIPES[name], "recipe": name, **overrides})


def crop_set_path(build: Path, detector_path: Path, limit: int | None) -> Path:
    """Cache file of the crop set, keyed by the detector that made it and the data code's settings."""
    key = hashlib.sha256()
    key.update(detector_path.read_bytes())
    key.update(repr((cd.CROP_MARGIN, cd.CROP_SIZE, cd.CONTEXT_MARGIN, cd.CONTEXT_SIZE, cd.VAL_SHARE,
                     cd.FRAMES_PER_LABEL, cd.MIN_WILD_FACE, limit)).encode())
    key.update(Path(cd.__file__).read_bytes())  # any change to how crops are made makes a new set
    return build / f"crops_{key.hexdigest()[:12]}.npz"


def load_or_build_crops(shared: Path, detector_path: Path, build: Path, *, limit: int | None = None) -> dict:
    from maskgate.edge.detector import FaceDetector
    from maskgate.edge.runtime import load_model

    path = crop_set_path(build, detector_path, limit)
    if path.is_file():
        log.info("using the cached crop set %s", path)
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    log.info("building the crop set with %s (the device's detector and crop)", detector_path.name)
    detector = FaceDetector(load_model(detector_path, threads=2, edgetpu="off"))
    arrays = cd.build_crop_set(shared, detector, limit=limit)
    build.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return arrays


def _batches(keras, images, labels, idx_fn, batch_size: int, size: int, rng_seed: int, p_grayscale: float,
             synthetic: float = 0.0, bare: np.ndarray | None = None):
    """Augmented training batches: one :func:`augment_batch` call per batch, seeded by (seed, epoch, batch).

    ``labels`` are one-hot.  With ``synthetic`` > 0, that share of the examples marked in ``bare``
    (bare faces) is first made into synthetic hard negatives (models/synthetic.py), from a random
    stream of their own, so that the augmentation's stream stays that of a run without them.
    """
    from maskgate.models.augment import augment_batch
    from maskgate.models.synthetic import synthetic_negatives

    class Batches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__(workers=1, use_multiprocessing=False)
            self.epoch = 0
            self.order = idx_fn(self.epoch)
            self.seconds = 0.0  # spent making batches: the report says where training time goes

        def __len__(self):
            return int(np.ceil(len(self.order) / batch_size))

        def __getitem__(self, i):
            sel = np.sort(self.order[i * batch_size:(i + 1) * batch_size])
            t = time.perf_counter()
            rng = np.random.default_rng((rng_seed, self.epoch, i))
            ctx, y = images[sel], labels[sel]  # copies (fancy indexing): safe to change
            if synthetic > 0:
                cls = np.where(bare[sel], np.argmax(y, axis=1), -1)  # only bare faces are changed
                new = synthetic_negatives(ctx, cls, np.random.default_rng((rng_seed, self.epoch, i, 17)), synthetic)
                changed = new != cls
                y[changed] = np.eye(y.shape[1], dtype=y.dtype)[new[changed]]
            x = augment_batch(ctx, rng, size, p_grayscale=p_grayscale)
            self.seconds += time.perf_counter() - t
            return x, y

        def on_epoch_end(self):
            self.epoch += 1
            self.order = idx_fn(self.epoch)

    return Batches()


def device_crops(images: np.ndarray, size: int = cd.CROP_SIZE) -> np.ndarray:
    return np.stack([cd.device_crop_from_context(c, size) for c in images])


def flip_averaged(model, crops: np.ndarray, flip: bool = True) -> np.ndarray:
    """Class probabilities of each crop, averaged with its mirror image's (``flip``), as the device computes them."""
    a = model.predict(crops.astype(np.float32), batch_size=256, verbose=0)
    if not flip:
        return a
    b = model.predict(crops[:, :, ::-1].astype(np.float32), batch_size=256, verbose=0)
    return (a + b) / 2.0


def machine() -> dict:
    """What a training time was measured on."""
    import os
    import platform

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version()}


def grayscale_crops(crops: np.ndarray) -> np.ndarray:
    """The crops without colour, as a Pi NoIR / IR camera delivers them at night (3 equal channels)."""
    from maskgate.edge.lowlight import grayscale

    return np.stack([grayscale(c) for c in crops])


def _lowest_threshold(neg: np.ndarray, max_false_accept: float) -> float:
    """The lowest threshold at which at most ``max_false_accept`` of ``neg`` score at or above it."""
    neg = np.sort(neg)
    allowed = int(np.floor(max_false_accept * len(neg)))  # negatives allowed at or above the threshold
    # just above the (allowed+1)-th highest negative score
    return float(np.nextafter(neg[-(allowed + 1)], 1.0)) if len(neg) > allowed else 0.0


def choose_threshold(p_mask: np.ndarray, is_mask: np.ndarray, max_false_accept: float, *,
                     p_mask_grayscale: np.ndarray | None = None) -> dict:
    """The lowest threshold whose false-accept rate on non-masked examples is at most ``max_false_accept``.

    Lowest, because among thresholds that keep false accepts that rare it lets the most masked people in.
    With ``p_mask_grayscale`` (the same examples without colour, as an IR camera sees them at night)
    the rate must hold in both: the threshold is the higher of the two.
    """
    neg, pos = p_mask[~is_mask], p_mask[is_mask]
    t = _lowest_threshold(neg, max_false_accept)
    if p_mask_grayscale is not None:
        t = max(t, _lowest_threshold(p_mask_grayscale[~is_mask], max_false_accept))
    t = min(max(t, 0.5), 0.999)  # never below an even chance
    t4 = round(t, 4)  # recorded with 4 decimals: rounded up, so that rounding lets no negative through
    t = t4 if t4 >= t else round(t4 + 1e-4, 4)
    out = {"threshold": t, **_rates(neg, pos, t),
           "negatives": int(len(neg)), "positives": int(len(pos)), "max_false_accept": max_false_accept}
    if p_mask_grayscale is not None:
        out["grayscale"] = _rates(p_mask_grayscale[~is_mask], p_mask_grayscale[is_mask], t)
    return out


def _rates(neg: np.ndarray, pos: np.ndarray, t: float) -> dict:
    return {"false_accept_rate": float(np.mean(neg >= t)) if len(neg) else 0.0,
            "false_reject_rate": float(np.mean(pos < t)) if len(pos) else 0.0}


def confusion(labels: np.ndarray, pred: np.ndarray, n: int) -> list[list[int]]:
    m = np.zeros((n, n), np.int64)
    np.add.at(m, (labels, pred), 1)
    return m.tolist()


def evaluate_split(probs: np.ndarray, labels: np.ndarray, kinds: np.ndarray, threshold: float) -> dict:
    """Confusion matrices (argmax over the 3 classes; and the gate's masked / not-masked at ``threshold``),
    per kind of example."""
    pred = probs.argmax(1)
    gate_masked = probs[:, cd.MASK] >= threshold
    is_mask = labels == cd.MASK
    out = {
        "classes": list(cd.CLASSES),
        "confusion_argmax": confusion(labels, pred, len(cd.CLASSES)),
        "accuracy_argmax": float(np.mean(pred == labels)),
        "gate": {
            "threshold": threshold,
            "false_accept_rate": float(np.mean(gate_masked[~is_mask])) if (~is_mask).any() else 0.0,
            "false_reject_rate": float(np.mean(~gate_masked[is_mask])) if is_mask.any() else 0.0,
        },
        "by_kind": {},
    }
    for k in sorted(set(kinds.tolist())):
        sel = kinds == k
        out["by_kind"][k] = {"n": int(sel.sum()), "called_masked": float(np.mean(gate_masked[sel])),
                             "argmax": {c: int(np.sum(pred[sel] == i)) for i, c in enumerate(cd.CLASSES)}}
    return out


def train(shared: Path, detector_path: Path, out_dir: Path, settings: TrainSettings | None = None, *,
          limit: int | None = None, crops_dir: Path | None = None, jobs: int = 1) -> dict:
    """Train and write the model, curves, confusion matrix and report into ``out_dir``.

    The crop set is cached in ``crops_dir`` (default ``out_dir``; ``maskgate train`` uses
    ``build/crops``) so that every seed and recipe uses the same crops without running the detector again.
    An ensemble's members are trained ``jobs`` at a time, one TensorFlow thread each.
    """
    from maskgate.models.mask_classifier import build_mask_classifier

    s = settings or TrainSettings()
    if s.members > 1:
        from maskgate.models.ensemble import train_ensemble

        return train_ensemble(shared, detector_path, out_dir, s, limit=limit, crops_dir=crops_dir, jobs=jobs)
    keras = import_keras()
    keras.utils.set_random_seed(s.seed)
    t0 = time.time()
    data = load_or_build_crops(shared, detector_path, crops_dir or out_dir, limit=limit)
    images, labels, kinds, val = data["images"], data["labels"], data["kinds"], data["val"]
    source = np.char.partition(kinds.astype(str), "/")[:, 0]
    train_idx = np.flatnonzero(~val & np.isin(source, s.sources))
    val_idx = np.flatnonzero(cd.threshold_split(kinds, val))
    log.info("%d training and %d validation examples", len(train_idx), len(val_idx))
    w = np.array([KIND_WEIGHTS.get(k, 1.0) for k in kinds[train_idx]])
    p = w / w.sum()
    epoch_size = min(s.epoch_size, max(len(train_idx) * 2, s.batch_size))

    def draw(epoch):
        return np.random.default_rng((s.seed, 1000 + epoch)).choice(train_idx, epoch_size, p=p)

    onehot = np.eye(len(cd.CLASSES), dtype=np.float32)[labels]
    bare = np.isin(kinds.astype(str), BARE_FACE_KINDS)
    batches = _batches(keras, images, onehot, draw, s.batch_size, s.input_size, s.seed, s.grayscale,
                       synthetic=s.synthetic, bare=bare)
    val_crops = device_crops(images[val_idx], s.input_size)
    # the per-epoch curves use a fixed sample of the validation split; the report uses all of it
    curve_idx = np.random.default_rng(s.seed).permutation(len(val_idx))[:512]

    model = build_mask_classifier(s.input_size, len(cd.CLASSES), seed=s.seed)
    steps = len(batches) * s.epochs
    schedule = keras.optimizers.schedules.CosineDecay(s.learning_rate, steps, warmup_target=None, alpha=0.02)
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=s.weight_decay),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=s.label_smoothing),
        metrics=["accuracy"],
    )
    t_fit = time.time()
    history = model.fit(batches, validation_data=(val_crops[curve_idx].astype(np.float32), onehot[val_idx][curve_idx]),
                        epochs=s.epochs, verbose=2)
    fit_seconds = time.time() - t_fit

    out_dir.mkdir(parents=True, exist_ok=True)
    model.save(out_dir / "mask_classifier.keras")
    timing = {"seconds": round(time.time() - t0, 1),
              "fit_seconds": round(fit_seconds, 1),  # of which making batches:
              "augment_seconds": round(batches.seconds, 1)}
    history = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    return write_report(model, s, data, out_dir, history=history, timing=timing)


def write_report(model, s: TrainSettings, data: dict, out_dir: Path, *, history: dict | None, timing: dict,
                 extra: dict | None = None) -> dict:
    """Validation figures, the threshold and how the run was made: ``report.json`` (and plots) in ``out_dir``."""
    from maskgate.models.report import plot_confusion, plot_curves

    tf = import_tensorflow()
    keras = import_keras()
    images, labels, kinds, val = data["images"], data["labels"], data["kinds"], data["val"]
    val_idx = np.flatnonzero(cd.threshold_split(kinds, val))
    val_crops = device_crops(images[val_idx], s.input_size)
    probs = flip_averaged(model, val_crops, s.flip_average)
    probs_gray = flip_averaged(model, grayscale_crops(val_crops), s.flip_average)
    is_mask = labels[val_idx] == cd.MASK
    choice = choose_threshold(probs[:, cd.MASK], is_mask, s.max_false_accept, p_mask_grayscale=probs_gray[:, cd.MASK])
    source = np.char.partition(kinds.astype(str), "/")[:, 0]
    report = {
        "settings": asdict(s),
        "examples": {"train": int(np.sum(~val & np.isin(source, s.sources))), "validation": int(len(val_idx))},
        "threshold_choice": choice,
        "validation": evaluate_split(probs, labels[val_idx], kinds[val_idx], choice["threshold"]),
        "held_out_faces12k": _faces12k_report(model, images, labels, kinds, val, s, choice["threshold"]),
        "history": history,
        **timing,
        "machine": machine(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        **(extra or {}),
    }
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    if history:
        plot_curves(history, out_dir / "curves.png")
    plot_confusion(report["validation"]["confusion_argmax"], list(cd.CLASSES), out_dir / "confusion.png")
    log.info("trained in %.0f s; threshold %.3f: val false accepts %.2f%%, false rejects %.2f%%",
             report["seconds"], choice["threshold"], 100 * choice["false_accept_rate"], 100 * choice["false_reject_rate"])
    return report


def _faces12k_report(model, images, labels, kinds, val, s: TrainSettings, threshold: float) -> dict | None:
    sel = np.flatnonzero(val & np.char.startswith(kinds.astype(str), "faces12k/"))
    if not len(sel):
        return None
    probs = flip_averaged(model, device_crops(images[sel], s.input_size), s.flip_average)
    return evaluate_split(probs, labels[sel], kinds[sel], threshold)
