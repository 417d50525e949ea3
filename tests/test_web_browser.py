"""The installer's page as a person uses it: headless Chromium against a gate replaying a clip.

The gate replays a masked visitor then an unmasked one in real time, with MockFactory pins; the
browser logs in with the device's token, watches the live image update, sees the lock turn
unlocked for the masked visitor and back, finds the denied visit in the events list, and is
refused an action with the viewer's token.  A screenshot is kept in build/artifacts/ (or
$MASKGATE_ARTIFACTS); docs/web-page.png is one of them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from maskgate.democlip import Segment, write_clip
from tests.browser_helpers import Browser, chromium_path
from tests.conftest import REQUIRE_TOOLS
from tests.web_helpers import ADMIN, VIEWER, GateWithPage, http, web_config

MASKED, UNMASKED = "0010.jpg", "0012.jpg"
ARTIFACTS = Path(os.environ.get("MASKGATE_ARTIFACTS") or Path(__file__).resolve().parents[1] / "build" / "artifacts")


@pytest.fixture
def browser(tmp_path):
    if chromium_path() is None:
        if REQUIRE_TOOLS:
            pytest.fail("chromium is required (MASKGATE_REQUIRE_TOOLS=1): .ci/apt-packages.txt")
        pytest.skip("chromium not installed")
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    b = Browser(profile)
    yield b
    b.close()


def login(page, token: str) -> None:
    page.wait_for("document.readyState === 'complete' && !document.getElementById('login').hidden", what="the login form")
    page.type_into("token", token)
    page.click("#login-form button")
    page.wait_for("!document.getElementById('app').hidden", what="the page after login")


@pytest.mark.slow
def test_installer_watches_a_masked_visit_and_a_denied_one(browser, factory, shared, tmp_path):
    clip = write_clip(tmp_path / "visits.avi", [Segment("empty", 1.0), Segment("visitor", 4.0, MASKED),
                                                Segment("empty", 5.0), Segment("visitor", 3.0, UNMASKED),
                                                Segment("empty", 4.0)], encounters=shared / "data" / "encounters")
    cfg = web_config(tmp_path)  # the door opens for policy.unlock_seconds (5 s): the page polls its status every second
    with GateWithPage(cfg, clip, factory) as g:
        assert http("GET", g.url + "api/status")[0] == 401  # no token
        page = browser.page(g.url)
        assert page.js("fetch('/api/status').then(r => r.status)") == 401
        page.wait_for("document.readyState === 'complete' && !document.getElementById('login').hidden", what="the login form")
        page.type_into("token", "not-the-token-of-this-door")
        page.click("#login-form button")
        page.wait_for("document.getElementById('login-error').textContent === 'Wrong token.'", what="a wrong token refused")
        assert page.js("document.getElementById('app').hidden")
        login(page, ADMIN)
        assert page.js("document.getElementById('role').textContent") == "admin"
        first = int(page.wait_for("Number(document.getElementById('live').dataset.seq || 0)", what="a live frame"))
        later = int(page.wait_for(f"Number(document.getElementById('live').dataset.seq || 0) > {first} && "
                                  "Number(document.getElementById('live').dataset.seq)", what="the live image to update"))
        assert later > first
        assert page.js("document.getElementById('live').naturalWidth") >= 640
        page.wait_for("document.getElementById('lock').textContent === 'unlocked'", timeout=20, what="unlocked")
        seq = page.js("Number(document.getElementById('live').dataset.seq)")  # a frame drawn after the unlock
        page.wait_for(f"Number(document.getElementById('live').dataset.seq) > {seq} && document.getElementById('live').complete",
                      what="a live frame after the unlock")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = page.screenshot(ARTIFACTS / "web-page.png")
        assert shot.stat().st_size > 20_000
        page.wait_for("document.getElementById('lock').textContent === 'locked'", timeout=20, what="locked again")
        page.wait_for("!!document.querySelector('#events tr.event-denied')", timeout=25,
                      what="the denied visit", show="document.getElementById('events').textContent")
        denied = page.js("document.querySelector('#events tr.event-denied').textContent")
        assert "no mask" in denied
        # filter the list by kind
        page.js("const s = document.getElementById('kind'); s.value = 'denied'; s.dispatchEvent(new Event('change'))")
        page.wait_for("[...document.querySelectorAll('#events tr')].every(tr => tr.className === 'event-denied')",
                      what="only denied events")
        page.screenshot(ARTIFACTS / "web-page-denied.png")
        # the viewer may look but not act
        page.click("#logout")
        page.wait_for("!document.getElementById('login').hidden", what="logged out")
        login(page, VIEWER)
        page.click("[data-action='pulse']")
        result = page.wait_for("document.getElementById('action-result').textContent", what="the action's answer")
        assert "refused (403)" in result and "admin" in result
        g.wait(30)
    assert g.error is None
    kinds = [e.event for e in g.gate.events.recorded]
    assert [k for k in kinds if k in ("unlocked", "locked", "denied", "remote_unlock")] == ["unlocked", "locked", "denied"]
    if os.environ.get("MASKGATE_UPDATE_DOCS") == "1":
        shutil.copy(shot, Path(__file__).resolve().parents[1] / "docs" / "web-page.png")
