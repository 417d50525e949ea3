"""Shared fixtures: where ../shared is, and whether optional tools may be skipped."""

from __future__ import annotations

import importlib.util
import os
import shutil

import pytest

from maskgate import datasets

REQUIRE_TOOLS = os.environ.get("MASKGATE_REQUIRE_TOOLS") == "1"


def need_tool(name: str) -> None:
    """Skip (locally) or fail (in CI, MASKGATE_REQUIRE_TOOLS=1) when a program is missing."""
    if shutil.which(name) is None:
        if REQUIRE_TOOLS:
            pytest.fail(f"{name} is required (MASKGATE_REQUIRE_TOOLS=1) but not installed")
        pytest.skip(f"{name} not installed")


def need_tensorflow() -> None:
    if importlib.util.find_spec("tensorflow") is None:
        if REQUIRE_TOOLS:
            pytest.fail("TensorFlow is required (MASKGATE_REQUIRE_TOOLS=1): pip install -e '.[train]'")
        pytest.skip("TensorFlow (the train extra) not installed")


@pytest.fixture(scope="session")
def shared():
    path = datasets.shared_dir(required=False)
    if path is None:
        if REQUIRE_TOOLS:
            pytest.fail("../shared is required in CI")
        pytest.skip("../shared not found")
    return path


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path, monkeypatch):
    """Each test gets its own state directory (event database, snapshots) and cache."""
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))


@pytest.fixture
def store(tmp_path):
    """A real SQLite event store in the test's folder."""
    from maskgate.edge.events import EventStore

    s = EventStore(tmp_path / "events.db")
    yield s
    s.close()


@pytest.fixture
def factory():
    """gpiozero's own simulated pins (PWM-capable, for the LEDs and the buzzer); reset after the test."""
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    f = MockFactory(pin_class=MockPWMPin)
    yield f
    f.reset()


@pytest.fixture
def cleanup():
    """Register teardown callables; they run in reverse order, each even if another failed."""
    things = []
    yield things.append
    for thing in reversed(things):
        try:
            thing()
        except Exception:  # noqa: BLE001 - teardown of servers that may already be gone
            pass
