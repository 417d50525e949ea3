"""The multi-seed comparison's statistics and table (pure), and the split the thresholds are chosen on."""

from __future__ import annotations

import numpy as np

from maskgate.models import classifier_data as cd
from maskgate.models.seed_compare import mean_sd, table, welch_t


def _run(recipe, seed, held, every=40, crop=0.12, floor=5):
    return {"recipe": recipe, "seed": seed, "held_out_false_rejects": held, "held_out_masked": 105,
            "all_false_rejects": every, "all_masked": 476, "held_out_no_face_at_any_threshold": floor,
            "crop_false_reject_rate": crop, "crop_p_mask": 0.88, "must_lock_unlocked": 0, "train_seconds": 600}


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
    assert "| held-out with no face at any threshold |" in lines[0] and "| 5.0 ± 0.0 (t +0.0) |" in more


def test_a_figure_older_runs_lack_is_left_blank_not_a_crash():
    runs = [_run("fast", s, 15) for s in range(2)] + [_run("v2", s, 12) for s in range(2)]
    del runs[0]["held_out_no_face_at_any_threshold"]
    row = next(line for line in table(runs).splitlines() if line.startswith("| v2 |"))
    assert "12.0 ± 0.0" in row and "| – |" in row


def test_thresholds_are_chosen_on_faces_and_wild_validation_only():
    kinds = np.array(["faces/with_mask", "faces12k/with_mask", "wild/background", "faces12k/without_mask", "wild/with_mask"])
    val = np.array([True, True, True, False, False])
    assert cd.threshold_split(kinds, val).tolist() == [True, False, True, False, False]


def test_the_audited_split_leaves_out_only_detections_away_from_annotated_faces():
    kinds = np.array(["wild/without_mask", "wild/false_detection", "wild/doorway_false_detection", "wild/background",
                      "wild/mask_weared_incorrect", "faces12k/without_mask"])
    val = np.ones(len(kinds), bool)
    assert cd.threshold_split(kinds, val, audited=False).tolist() == [True, True, True, True, True, False]
    assert cd.threshold_split(kinds, val).tolist() == [True, False, False, True, True, False]  # the committed rule


def test_ensembles_of_different_seeds_share_no_member_and_reuse_the_recipes_own_runs(tmp_path):
    from maskgate.commands.seeds import _single_runs
    from maskgate.models.ensemble import member_seeds, member_settings
    from maskgate.models.train import recipe_settings

    ens = [recipe_settings("v2x2", seed=s) for s in (0, 1, 2)]
    assert [member_seeds(s) for s in ens] == [[0, 1], [2, 3], [4, 5]]
    m = member_settings(ens[1], 3)
    assert m == recipe_settings("v2", seed=3)  # a member is exactly a run of v2 at its seed
    planned = [(recipe_settings("v2", seed=s), tmp_path / f"v2_s{s}") for s in (0, 1)] + \
              [(s, tmp_path / f"v2x2_s{s.seed}") for s in ens[:2]]
    runs = _single_runs(planned, tmp_path)
    assert [d.name for _, d in runs] == ["v2_s0", "v2_s1", "v2_s2", "v2_s3"]  # v2's own runs are the first members


def test_a_finished_run_is_recognised_by_its_settings_old_reports_included(tmp_path):
    import json
    from dataclasses import asdict

    from maskgate.models.ensemble import is_run_of
    from maskgate.models.train import recipe_settings

    run = tmp_path / "v2_s4"
    run.mkdir()
    (run / "mask_classifier.keras").write_bytes(b"x")
    old = {k: v for k, v in asdict(recipe_settings("v2", seed=4)).items()
           if k not in ("flip_average", "members", "member_recipe")}  # a report from before those settings
    (run / "report.json").write_text(json.dumps({"settings": old}))
    assert is_run_of(run, recipe_settings("v2", seed=4))
    assert not is_run_of(run, recipe_settings("v2", seed=5)) and not is_run_of(run, recipe_settings("fast", seed=4))
    assert not is_run_of(tmp_path / "missing", recipe_settings("v2", seed=4))


def test_a_training_process_is_given_only_what_its_command_line_can_say(tmp_path):
    import pytest

    from maskgate.errors import DataError
    from maskgate.models.train import recipe_settings
    from maskgate.models.training_runs import train_command

    cmd = train_command(recipe_settings("v2", seed=3, epochs=2), tmp_path / "r", tmp_path, tmp_path / "d.tflite", limit=12)
    assert cmd[cmd.index("--recipe") + 1] == "v2" and cmd[cmd.index("--seed") + 1] == "3"
    assert cmd[cmd.index("--epochs") + 1] == "2" and "--epoch-size" not in cmd and cmd[-2:] == ["--limit", "12"]
    with pytest.raises(DataError, match="cannot be given"):
        train_command(recipe_settings("v2", seed=3, learning_rate=0.1), tmp_path / "r", tmp_path, tmp_path / "d.tflite")
