"""The low-light step: the enhancers brighten dark frames, and `maskgate eval --darken --lowlight` runs."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from maskgate.cli import main
from maskgate.edge.config import Config
from maskgate.edge.lowlight import clahe_enhancer, darken, gamma_enhancer, make_enhancer


def dark_scene(h: int = 240, w: int = 320) -> np.ndarray:
    """A dim room: a gradient wall, a lighter 'face' disc, shadows, a little noise (BGR uint8)."""
    rng = np.random.default_rng(1)
    img = np.zeros((h, w, 3), np.float32)
    img[:] = np.linspace(10, 45, w, dtype=np.float32)[None, :, None]
    cv2.circle(img, (w // 2, h // 2), h // 5, (55, 60, 70), -1)
    cv2.rectangle(img, (20, 20), (70, 200), (5, 5, 5), -1)
    img += rng.normal(0, 2, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("mode", ["gamma", "clahe"])
def test_enhancers_brighten_a_dark_frame_and_keep_shape_and_dtype(mode):
    img = dark_scene()
    before = img.copy()
    out = make_enhancer(mode)(img)
    assert out.shape == img.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(img, before)  # the input frame is left alone
    assert out.mean() > 1.2 * img.mean()
    # contrast in the shadows grows: the face stands out more from the wall beside it
    h, w = img.shape[:2]
    face, wall = (h // 2, w // 2), (h // 2, w // 2 + h // 3)
    assert int(out[face].mean()) - int(out[wall].mean()) > int(img[face].mean()) - int(img[wall].mean())


def test_gamma_keeps_black_and_white_and_is_monotonic():
    ramp = np.tile(np.arange(256, dtype=np.uint8)[None, :, None], (4, 1, 3))
    out = gamma_enhancer(0.6)(ramp)
    row = out[0, :, 0].astype(int)
    assert row[0] == 0 and row[-1] == 255
    assert (np.diff(row) >= 0).all() and (row >= np.arange(256)).all()


def test_enhancers_work_on_frames_of_other_sizes_in_turn():
    g, c = gamma_enhancer(), clahe_enhancer()
    for shape in ((240, 320, 3), (480, 640, 3), (240, 320, 3)):
        img = np.full(shape, 30, np.uint8)
        assert g(img).shape == shape and c(img).shape == shape


def test_auto_brightens_dark_frames_only():
    from maskgate.edge.lowlight import DARK_BELOW, mean_brightness

    auto = make_enhancer("auto")
    dark = dark_scene()
    assert mean_brightness(dark) < DARK_BELOW
    out = auto(dark)
    assert out.shape == dark.shape and out.dtype == np.uint8 and out.mean() > 1.2 * dark.mean()
    np.testing.assert_array_equal(out, gamma_enhancer()(dark))
    bright = np.clip(dark.astype(int) + 120, 0, 255).astype(np.uint8)
    assert mean_brightness(bright) > DARK_BELOW
    assert auto(bright) is bright  # untouched, not even copied
    # the frames `maskgate eval --darken` makes are all dark
    assert mean_brightness(darken(np.full((120, 160, 3), 200, np.uint8))) < DARK_BELOW


def test_darken_makes_a_frame_darker_and_is_repeatable():
    img = np.full((120, 160, 3), 160, np.uint8)
    d = darken(img)
    assert d.shape == img.shape and d.dtype == np.uint8
    assert d.mean() < 0.4 * img.mean()
    np.testing.assert_array_equal(d, darken(img))  # the noise is seeded by the frame: evaluations repeat
    with pytest.raises(ValueError):
        make_enhancer("night-vision")


def test_lowlight_config_choices():
    assert Config().detection.lowlight in ("off", "gamma", "clahe", "auto")
    assert Config().replace(detection={"lowlight": "clahe"}).detection.lowlight == "clahe"


@pytest.fixture
def few_frames(shared, tmp_path):
    """Six encounter frames (three masked, three not) as a frames folder."""
    enc = shared / "data" / "encounters"
    labels = json.loads((enc / "labels.json").read_text())
    masked = [n for n, v in sorted(labels.items()) if v["label"] == "with_mask"][:3]
    other = [n for n, v in sorted(labels.items()) if v["label"] == "without_mask"][:3]
    folder = tmp_path / "frames"
    folder.mkdir()
    for n in masked + other:
        (folder / n).symlink_to(enc / n)
    (folder / "labels.json").write_text(json.dumps({n: labels[n] for n in masked + other}))
    return folder


@pytest.mark.parametrize("mode", ["off", "gamma", "clahe", "auto"])
def test_eval_on_darkened_frames_runs_with_each_lowlight_mode(few_frames, tmp_path, mode, capsys):
    out = tmp_path / f"report_{mode}.json"
    assert main(["eval", "--data", str(few_frames), "--darken", "--lowlight", mode, "--models", "int8",
                 "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["darkened"] is True and report["lowlight"] == mode and report["kind"] == "frames"
    gate = report["models"]["int8"]["gate"]["all"]
    assert gate["frames"] == 6 and gate["must_unlock"] == 3 and gate["must_lock"] == 3
    assert 0 <= gate["false_accepts"] <= 3 and 0 <= gate["false_rejects"] <= 3
    assert "false accepts" in capsys.readouterr().out


def test_the_eval_transform_darkens_what_the_models_see(few_frames):
    from maskgate.evaluation import frames_from_folder

    plain = list(frames_from_folder(few_frames))
    dark = list(frames_from_folder(few_frames, transform=darken))
    assert [n for n, *_ in plain] == [n for n, *_ in dark]
    for (_, _, _, a), (_, _, _, b) in zip(plain, dark):
        assert a.shape == b.shape and b.mean() < 0.5 * a.mean()


def test_grayscale_frames_keep_three_equal_channels_and_eval_takes_them(few_frames, tmp_path):
    from maskgate.edge.lowlight import grayscale

    img = np.random.default_rng(0).integers(0, 255, (48, 64, 3), np.uint8)
    g = grayscale(img)
    assert g.shape == img.shape and g.dtype == np.uint8
    assert np.array_equal(g[..., 0], g[..., 1]) and np.array_equal(g[..., 1], g[..., 2])
    out = tmp_path / "gray.json"
    assert main(["eval", "--data", str(few_frames), "--grayscale", "--models", "int8", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["grayscale"] is True and report["darkened"] is False
    assert report["models"]["int8"]["gate"]["all"]["frames"] == 6
