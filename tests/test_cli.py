"""The command line: detect on every encounter frame, one-line errors, help."""

import json
import subprocess
import sys

from maskgate.cli import main


def test_detect_json_answers_every_encounter_frame(shared, capsys):
    frames = sorted((shared / "data" / "encounters").glob("*.jpg"))
    assert len(frames) == 568
    assert main(["detect", "--json", *map(str, frames)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(frames)
    labels = json.loads((shared / "data" / "encounters" / "labels.json").read_text())
    decisions = {}
    for line, path in zip(lines, frames):
        obj = json.loads(line)
        assert obj["image"] == str(path)
        assert obj["decision"] in ("unlock", "deny", "no_face")
        for f in obj["faces"]:
            x1, y1, x2, y2 = f["box"]
            assert 0 <= x1 < x2 <= 640 and 0 <= y1 < y2 <= 480
            assert f["label"] in ("with_mask", "without_mask") and 0 <= f["p_mask"] <= 1
        assert (obj["decision"] == "no_face") == (not obj["faces"])
        decisions[path.name] = obj["decision"]
    # the verdicts are the gate's: masked frames mostly unlock, the others almost never
    masked = [n for n, v in labels.items() if v["label"] == "with_mask"]
    others = [n for n, v in labels.items() if v["label"] != "with_mask"]
    assert sum(decisions[n] == "unlock" for n in masked) / len(masked) > 0.8
    assert sum(decisions[n] == "unlock" for n in others) / len(others) < 0.05


def test_detect_reports_a_corrupt_image_and_goes_on(shared, tmp_path, capsys):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    good = shared / "data" / "encounters" / "0001.jpg"
    assert main(["detect", "--json", str(bad), str(good)]) == 1
    first, second = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert first == {"image": str(bad), "error": f"{bad} is not a readable image"}
    assert second["image"] == str(good) and "decision" in second


def test_errors_are_one_line_without_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-m", "maskgate", "detect", str(tmp_path / "none.jpg"), "--config",
                        str(tmp_path / "missing.toml")], capture_output=True, text=True)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [f"maskgate: error: config key '<file>': config file not found: {tmp_path / 'missing.toml'}"]


def test_version_and_help():
    r = subprocess.run([sys.executable, "-m", "maskgate", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("maskgate ")
    r = subprocess.run([sys.executable, "-m", "maskgate", "--help"], capture_output=True, text=True)
    for cmd in ("run", "detect", "train", "convert", "eval", "image"):
        assert cmd in r.stdout
