"""The door hardware on gpiozero's own MockFactory pins: what the relay actually did."""

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from maskgate.edge.actuators import DoorLock, Hardware, make_pin_factory
from maskgate.edge.config import GpioConfig


@pytest.fixture
def factory():
    f = MockFactory(pin_class=MockPWMPin)
    yield f
    f.reset()


def test_fail_secure_lock_energizes_only_to_unlock(factory):
    lock = DoorLock(17, pin_factory=factory)
    pin = factory.pin(17)
    assert pin.state == 0 and lock.locked
    lock.unlock()
    assert pin.state == 1 and not lock.locked
    lock.lock()
    lock.unlock()
    lock.fail()
    assert pin.state == 0 and lock.locked
    pin.assert_states([0, 1, 0, 1, 0])


def test_active_low_relay_board_is_driven_inverted(factory):
    lock = DoorLock(17, active_high=False, pin_factory=factory)
    pin = factory.pin(17)
    assert pin.state == 1  # de-energized on an active-low board = pin high
    lock.unlock()
    assert pin.state == 0
    lock.fail()
    assert pin.state == 1


def test_fail_safe_maglock_is_held_energized_and_released_on_failure(factory):
    lock = DoorLock(17, fail_mode="safe", pin_factory=factory)
    pin = factory.pin(17)
    assert pin.state == 1 and lock.locked  # magnet powered
    lock.unlock()
    assert pin.state == 0
    lock.lock()
    lock.fail()
    assert pin.state == 0 and not lock.locked  # released: the door opens, as fail-safe requires
    pin.assert_states([0, 1, 0, 1, 0])


def test_hardware_inputs_arrive_on_the_queue(factory):
    hw = Hardware(GpioConfig(exit_button=24, door_contact=25), pin_factory=factory)
    button, contact = factory.pin(24), factory.pin(25)
    contact.drive_low()  # door closed
    hw.inputs.get(timeout=1)  # the "closed" change
    assert hw.door_open is False
    button.drive_low()
    change = hw.inputs.get(timeout=1)
    assert (change.kind, change.value) == ("exit", True)
    contact.drive_high()
    change = hw.inputs.get(timeout=1)
    assert (change.kind, change.value) == ("door", True)
    assert hw.door_open is True
    hw.close()


def test_close_de_energizes_first_and_is_idempotent(factory):
    hw = Hardware(GpioConfig(), pin_factory=factory)
    hw.lock.unlock()
    hw.close()
    hw.close()
    assert factory.pin(17).state == 0


def test_pin_conflicts_are_hardware_errors(factory):
    from maskgate.errors import HardwareError

    from gpiozero import LED

    other = LED(17, pin_factory=factory)  # someone else holds GPIO17
    with pytest.raises(HardwareError, match="GPIO17"):
        Hardware(GpioConfig(), pin_factory=factory)
    other.close()


def test_auto_factory_is_mock_off_a_pi():
    f = make_pin_factory("auto")
    assert isinstance(f, MockFactory)
    f.close()
