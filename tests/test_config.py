"""The config: defaults that run anywhere, and errors that name the key."""

import pytest

from maskgate.edge import config
from maskgate.errors import ConfigError


def test_defaults_run_on_a_bare_box():
    cfg = config.load()
    assert cfg.camera.source == "auto"
    assert cfg.gpio.pin_factory == "auto"
    assert cfg.gpio.fail_mode == "secure"
    assert cfg.policy.enforce == "hard"


@pytest.mark.parametrize("text, key, words", [
    ("[policy]\nwindow = 0\n", "policy.window", ">= 1"),
    ("[policy]\nwindw = 5\n", "policy.windw", "unknown key"),
    ("[polcy]\nwindow = 5\n", "polcy", "unknown section"),
    ("[policy]\nenforce = 'maybe'\n", "policy.enforce", "one of 'hard', 'soft'"),
    ("[camera]\nfps = 'fast'\n", "camera.fps", "a number"),
    ("[gpio]\nlock_pin = 17\nred_led = 17\n", "gpio.red_led", "GPIO17 is already used by gpio.lock_pin"),
    ("[policy]\nwindow = 3\nrequired = 4\n", "policy.required", "cannot exceed"),
    ("[gpio]\nlock_active_high = 1\n", "gpio.lock_active_high", "true or false"),
    ("[email]\nrecipients = 'a@b'\n", "email.recipients", "list of str"),
    ("[detection]\nzoom_out = 0.5\n", "detection.zoom_out", ">= 1"),
])
def test_bad_values_name_the_key(tmp_path, text, key, words):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(ConfigError) as err:
        config.load([f])
    assert err.value.key == key
    assert words in str(err.value)
    assert isinstance(err.value, ValueError)


def test_later_files_override_earlier_ones_key_by_key(tmp_path):
    a = tmp_path / "a.toml"
    b = tmp_path / "b.toml"
    a.write_text("[policy]\nwindow = 7\nrequired = 4\n[device]\nname = 'base'\n")
    b.write_text("[device]\nname = 'door-3'\n")
    cfg = config.load([a, b])
    assert (cfg.policy.window, cfg.policy.required, cfg.device.name) == (7, 4, "door-3")


def test_missing_and_malformed_files_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        config.load([tmp_path / "nope.toml"])
    bad = tmp_path / "bad.toml"
    bad.write_text("[policy\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        config.load([bad])


def test_replace_validates_like_a_file():
    cfg = config.load()
    assert cfg.replace(camera={"fps": 5}).camera.fps == 5.0
    with pytest.raises(ConfigError, match="camera.fps"):
        cfg.replace(camera={"fps": 0})


def test_every_key_is_documented():
    rows = config.describe()
    assert len(rows) > 50
    assert all(doc for _, _, _, doc in rows)


def test_state_dir_follows_systemd(monkeypatch, tmp_path):
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "s1"))
    assert config.state_dir() == tmp_path / "s1"
    monkeypatch.delenv("STATE_DIRECTORY")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "x"))
    assert config.state_dir() == tmp_path / "x" / "maskgate"


def test_docs_config_reference_is_current():
    """docs/config.md is `maskgate config reference`; a new or changed key must be documented."""
    from pathlib import Path

    from maskgate.commands.config import reference_markdown

    doc = Path(__file__).resolve().parents[1] / "docs" / "config.md"
    assert doc.read_text() == reference_markdown(), "run: maskgate config reference > docs/config.md"
