"""The multi-seed comparison's statistics and table (pure), and the split the thresholds are chosen on."""

from __future__ import annotations

import numpy as np

from maskgate.models import classifier_data as cd
from maskgate.models.seed_compare import mean_sd, table, welch_t


def _run(recipe, seed, held, every=40, crop=0.12):
    return {"recipe": recipe, "seed": seed, "held_out_false_rejects": held, "held_out_masked": 105,
            "all_false_rejects": every, "all_masked": 476, "crop_false_reject_rate": crop, "crop_p_mask": 0.88,
            "must_lock_unlocked": 0, "train_seconds": 600}


def test_welch_t_separates_real_differences_from_seed_noise():
    assert abs(welch_t([14, 17, 15], [15, 13, 16])) < 1.0  # overlapping seeds: no evidence
    assert welch_t([14, 15, 16], [6, 7, 8]) > 5.0  # far apart relative to the spread
    assert welch_t([1], [2, 3]) is None  # one seed says nothing about spread
    m, sd = mean_sd([14, 15, 16])
    assert m == 15 and abs(sd - 1.0) < 1e-12


def test_table_gives_mean_spread_and_t_against_the_baseline():
    runs = [_run("fast", s, h) for s, h in enumerate((15, 16, 17))] + [_run("fast+12k", s, h) for s, h in enumerate((8, 9, 10))]
    text = table(runs, baseline="fast")
    lines = text.splitlines()
    assert lines[0].startswith("| recipe | seeds | held-out FR (of 105)")
    fast = next(line for line in lines if line.startswith("| fast |"))
    more = next(line for line in lines if line.startswith("| fast+12k |"))
    assert "16.0 ± 1.0" in fast and "(t" not in fast
    assert "9.0 ± 1.0 (t -8.6)" in more
    assert more.endswith("| 0 | 10.0 |")


def test_thresholds_are_chosen_on_faces_and_wild_validation_only():
    kinds = np.array(["faces/with_mask", "faces12k/with_mask", "wild/background", "faces12k/without_mask", "wild/with_mask"])
    val = np.array([True, True, True, False, False])
    assert cd.threshold_split(kinds, val).tolist() == [True, False, True, False, False]


def test_the_audited_split_leaves_out_only_detections_away_from_annotated_faces():
    kinds = np.array(["wild/without_mask", "wild/false_detection", "wild/doorway_false_detection", "wild/background",
                      "wild/mask_weared_incorrect", "faces12k/without_mask"])
    val = np.ones(len(kinds), bool)
    assert cd.threshold_split(kinds, val).tolist() == [True, True, True, True, True, False]
    assert cd.threshold_split(kinds, val, audited=True).tolist() == [True, False, False, True, True, False]
