"""An ensemble of independently trained classifiers, as one model: the average of their probabilities.

Why: the door's ``p_mask`` is bounded by the one must-stay-locked frame a run scores highest (an
unmasked face without colour, a hand over a bare mouth), and which frame that is, and how high,
changes from seed to seed.  Single runs of the same recipe refused 9 to 25 of 105 held-out masked
visitors for that reason alone (docs/training.md).  Averaging runs that were trained apart smooths
that tail; the comparison over seeds is in docs/training.md.

The ensemble is one Keras model (and so one int8 file, one call per face on the device): the
members side by side on the same crop, their softmax outputs averaged.  Two members that see the
face once cost the device what one member with its mirror image did: two passes of the network.

Members are ordinary ``maskgate train`` runs of ``settings.member_recipe`` with the seeds
:func:`member_seeds` gives (``members * seed + i``), so ensembles of different seeds share no
member and are as independent of each other as single runs are.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, replace
from pathlib import Path

from maskgate.errors import DataError
from maskgate.models._tf import import_keras

log = logging.getLogger(__name__)

MODEL_NAME = "mask_classifier.keras"


def member_seeds(settings) -> list[int]:
    return [settings.members * settings.seed + i for i in range(settings.members)]


def member_settings(settings, seed: int):
    """A member's own settings: the ensemble's, as one run of the member recipe (judged with its mirror image)."""
    if not settings.member_recipe:
        raise DataError(f"recipe {settings.recipe!r}: an ensemble needs member_recipe")
    return replace(settings, seed=seed, members=1, member_recipe="", recipe=settings.member_recipe, flip_average=True)


def build_ensemble(members: list):
    """One model: each member on the same input, their class probabilities averaged."""
    keras = import_keras()
    if len(members) < 2:
        raise DataError("an ensemble needs at least two members")
    sizes = {tuple(m.input_shape[1:]) for m in members}
    if len(sizes) != 1:
        raise DataError(f"ensemble members take different inputs: {sorted(sizes)}")
    inp = keras.Input(next(iter(sizes)), name="bgr")
    outs = [keras.Model(m.inputs[0], m.outputs[0], name=f"member{i}")(inp) for i, m in enumerate(members)]
    return keras.Model(inp, keras.layers.Average(name="classes")(outs), name=f"mask_classifier_x{len(members)}")


def _normal(settings: dict) -> dict:
    return json.loads(json.dumps(settings))  # tuples as lists, as report.json has them


def is_run_of(run: Path, settings) -> bool:
    """Whether ``run`` holds a finished training run made with exactly ``settings``.

    Settings added to :class:`~maskgate.models.train.TrainSettings` after a run was made count at
    their defaults (a run's report has the fields of its time).
    """
    from maskgate.models.train import TrainSettings

    report = run / "report.json"
    if not (run / MODEL_NAME).is_file() or not report.is_file():
        return False
    had = {**_normal(asdict(TrainSettings())), **json.loads(report.read_text()).get("settings", {})}
    return {k: had.get(k) for k in asdict(settings)} == _normal(asdict(settings))


def train_ensemble(shared: Path, detector_path: Path, out_dir: Path, settings, *, limit: int | None = None,
                   crops_dir: Path | None = None, member_dirs: list[Path] | None = None, jobs: int = 1) -> dict:
    """Train the members that are not there yet, then write the ensemble and its report into ``out_dir``.

    ``member_dirs``: where each member's run is (or goes); default ``out_dir/member_sN``.  A folder
    that already holds a run of exactly the member's settings is used as it is.  ``jobs`` > 1 trains
    the missing members side by side in their own processes (:mod:`maskgate.models.training_runs`).
    """
    from maskgate.models.mask_classifier import load_mask_classifier
    from maskgate.models.train import load_or_build_crops, train, write_report
    from maskgate.models.training_runs import train_in_parallel

    t0 = time.time()
    crops = crops_dir or out_dir
    data = load_or_build_crops(shared, detector_path, crops, limit=limit)  # once, before any member runs
    seeds = member_seeds(settings)
    dirs = member_dirs or [out_dir / f"member_s{seed}" for seed in seeds]
    if len(dirs) != len(seeds):
        raise DataError(f"{len(seeds)} members but {len(dirs)} member folders")
    plans = [(member_settings(settings, seed), d) for seed, d in zip(seeds, dirs)]
    missing = [(m, d) for m, d in plans if not is_run_of(d, m)]
    for m, d in plans:
        if (m, d) not in missing:
            log.info("ensemble member %s: using the run already there", d)
    if missing and jobs > 1:
        train_in_parallel(missing, jobs, shared, detector_path, crops=crops, limit=limit)
    else:
        for m, d in missing:
            train(shared, detector_path, d, m, limit=limit, crops_dir=crops)
    for m, d in plans:
        if not is_run_of(d, m):
            raise DataError(f"ensemble member {d} did not come out as a run of its settings")

    model = build_ensemble([load_mask_classifier(d / MODEL_NAME) for _, d in plans])
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save(out_dir / MODEL_NAME)
    reports = [json.loads((d / "report.json").read_text()) for _, d in plans]
    members = [{"folder": str(d), "seed": m.seed, "seconds": r.get("seconds"),
                "threshold": r.get("threshold_choice", {}).get("threshold")} for (m, d), r in zip(plans, reports)]
    timing = {"seconds": round(sum(r.get("seconds") or 0.0 for r in reports), 1),  # every member's training, added
              "fit_seconds": round(sum(r.get("fit_seconds") or 0.0 for r in reports), 1),
              "augment_seconds": round(sum(r.get("augment_seconds") or 0.0 for r in reports), 1),
              "wall_seconds": round(time.time() - t0, 1)}
    return write_report(model, settings, data, out_dir, history=None, timing=timing, extra={"members": members})
