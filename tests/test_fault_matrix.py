"""docs/faults.md is the fault matrix as the tests state it (tests/fault_matrix.py)."""

from __future__ import annotations

from pathlib import Path

import fault_matrix

ROOT = Path(__file__).resolve().parents[1]


def test_docs_faults_is_the_matrix_of_the_tests():
    """A new, renamed or reworded fault test must be published: python tests/fault_matrix.py > docs/faults.md"""
    text = (ROOT / "docs" / "faults.md").read_text()
    generated = fault_matrix.markdown()
    assert text.startswith(generated), "run: python tests/fault_matrix.py > docs/faults.md (then keep the soak figures)"


def test_every_fault_of_the_issue_has_a_row():
    names = " ".join(t for *_, t in fault_matrix.rows())
    for word in ("sigkill", "kill_9", "corrupt_database", "model_that_does_not_match", "full_disk", "garbage_frames",
                 "wrong_dtype", "wall_clock", "hostile_mqtt", "fuzzed_config", "soak", "secret_file", "need_tls"):
        assert word in names, word
    assert "<<" not in fault_matrix.markdown() and "`unlocked`" in fault_matrix.markdown()
    assert (ROOT / "README.md").read_text().count("docs/faults.md") >= 1
