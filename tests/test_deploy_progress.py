"""Progress of ``image build`` and ``image flash``: bytes, rate and time left, so a long write never looks like a hang."""

from __future__ import annotations

import io

import pytest

import deploy_helpers as h
from maskgate.cli import main as cli
from maskgate.deploy.progress import Progress, clock_text, human

GiB = 1 << 30


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_line_says_bytes_rate_and_time_left():
    clock = FakeClock()
    p = Progress("writing /dev/sdX", 3 * GiB, stream=io.StringIO(), clock=clock, enabled=True, tty=False)
    clock.t += 2.0
    assert p.line(GiB * 3 // 10) == "writing /dev/sdX: 307.2 MiB of 3.0 GiB (10 %), 153.6 MiB/s, 0:18 left"
    clock.t += 4.67
    assert p.line(3 * GiB).endswith("(100 %), 460.6 MiB/s, took 0:07")
    assert human(512) == "512 B" and human(1536) == "1.5 KiB" and clock_text(3725) == "1:02:05"


def test_without_a_terminal_one_line_per_tenth():
    out = io.StringIO()
    clock = FakeClock()
    p = Progress("copying base.img", 1000, stream=out, clock=clock, enabled=True, tty=False)
    for done in range(0, 1001, 5):
        clock.t += 0.01
        p.update(done)
    p.finish()
    lines = out.getvalue().splitlines()
    assert [ln.split("(")[1].split(" ")[0] for ln in lines] == ["10", "20", "30", "40", "50", "60", "70", "80", "90", "100"]
    assert all("/s" in ln for ln in lines) and "left" in lines[0] and "took" in lines[-1]


def test_on_a_terminal_one_line_redrawn_at_most_twice_a_second():
    out = io.StringIO()
    clock = FakeClock()
    p = Progress("writing card", 10_000, stream=out, clock=clock, enabled=True, tty=True)
    for done in range(0, 10_000, 10):  # 1000 updates over 10 s
        clock.t += 0.01
        p.update(done)
    p.finish()
    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")
    assert 18 <= text.count("\r") <= 22  # every 0.5 s, plus the final line


def test_quiet_shows_nothing():
    out = io.StringIO()
    p = Progress("writing card", 100, stream=out, enabled=False, tty=False)
    for done in range(0, 101, 10):
        p.update(done)
    p.finish()
    assert out.getvalue() == ""


@pytest.fixture()
def standin(tmp_path):
    h.require_tools("sfdisk", "mkfs.vfat", "mcopy", "mdir", "mkfs.ext4", "debugfs", "e2fsck", "resize2fs", "dumpe2fs")
    return h.make_base_image(tmp_path / "base" / "raspios-standin.img")


def test_build_and_flash_report_progress(standin, tmp_path, capsys):
    wh = h.make_wheel(tmp_path / "wh", "maskgate-tinydep").parent
    out = tmp_path / "gate.img"
    assert cli(["image", "build", "--base", str(standin), "--out", str(out), "--wheelhouse", str(wh),
                "--extra", "maskgate-tinydep", "--allow-missing-deps", "--reserve", "16M"]) == 0
    err = capsys.readouterr().err
    assert "copying raspios-standin.img: " in err and "(100 %)" in err and "/s, took" in err
    dev = tmp_path / "device.toml"
    dev.write_text('[device]\nname = "p"\n')
    card = tmp_path / "card.img"
    assert cli(["image", "flash", str(out), "--device", str(card), "--config", str(dev), "--yes"]) == 0
    err = capsys.readouterr().err
    for what in ("writing", "verifying"):
        lines = [ln for ln in err.splitlines() if ln.startswith(f"{what} {card}: ")]
        assert lines and "left" in lines[0] and ("MiB/s" in lines[0] or "GiB/s" in lines[0]) and "(100 %)" in lines[-1], err
