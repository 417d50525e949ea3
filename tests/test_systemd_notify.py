"""SystemdNotifier against a real AF_UNIX datagram socket, as systemd would listen on it."""

from __future__ import annotations

import os
import socket
import uuid

import pytest

from maskgate.edge.systemd_notify import SystemdNotifier


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def listener(tmp_path):
    """A bound datagram socket on a file path, like systemd's $NOTIFY_SOCKET."""
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    yield str(path), sock
    sock.close()


def receive_all(sock: socket.socket) -> list[str]:
    """Every datagram waiting on the socket (non-blocking after the first)."""
    out = []
    sock.setblocking(False)
    try:
        while True:
            out.append(sock.recv(4096).decode())
    except BlockingIOError:
        pass
    finally:
        sock.settimeout(2)
    return out


def test_ready_status_stopping_reach_the_socket(listener):
    path, sock = listener
    n = SystemdNotifier(environ={"NOTIFY_SOCKET": path})
    assert n.enabled
    assert n.ready("camera up\nmodels loaded")
    assert sock.recv(4096).decode() == "READY=1\nSTATUS=camera up models loaded"
    assert n.status("denied: no mask")
    assert sock.recv(4096).decode() == "STATUS=denied: no mask"
    assert n.extend_timeout(1.5)
    assert sock.recv(4096).decode() == "EXTEND_TIMEOUT_USEC=1500000"
    assert n.stopping("locking")
    assert sock.recv(4096).decode() == "STOPPING=1\nSTATUS=locking"
    assert n.reloading("new config")
    reloading, usec, status = sock.recv(4096).decode().split("\n")
    assert reloading == "RELOADING=1" and int(usec.split("=")[1]) > 0 and status == "STATUS=new config"
    n.close()


def test_abstract_namespace_socket():
    name = f"maskgate-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2)
    try:
        with SystemdNotifier(environ={"NOTIFY_SOCKET": "@" + name}) as n:
            assert n.ready()
            assert sock.recv(4096) == b"READY=1"
    finally:
        sock.close()


def test_watchdog_is_rate_limited_to_a_quarter_interval(listener):
    path, sock = listener
    clock = FakeClock()
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "20000000", "WATCHDOG_PID": str(os.getpid())}
    n = SystemdNotifier(environ=env, clock=clock)
    assert n.watchdog_interval == 20.0
    sent = []
    for _ in range(100):  # a burst of frames at the same instant: one ping
        sent.append(n.watchdog())
    assert sent.count(True) == 1
    clock.t += 4.9  # less than 20 s / 4
    assert not n.watchdog()
    clock.t += 0.2
    assert n.watchdog()
    assert receive_all(sock) == ["WATCHDOG=1", "WATCHDOG=1"]


def test_ready_counts_as_a_ping(listener):
    path, sock = listener
    clock = FakeClock()
    n = SystemdNotifier(environ={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "8000000"}, clock=clock)
    assert n.ready()
    assert not n.watchdog()  # just told systemd we are alive
    clock.t += 2.0
    assert n.watchdog()
    assert receive_all(sock) == ["READY=1", "WATCHDOG=1"]


def test_watchdog_for_another_pid_is_ignored(listener):
    path, sock = listener
    n = SystemdNotifier(environ={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid() + 1)})
    assert not n.watchdog_enabled
    assert not n.watchdog()
    assert n.status("still reachable")  # other messages still go out
    assert receive_all(sock) == ["STATUS=still reachable"]


def test_no_watchdog_configured_sends_no_pings(listener):
    path, sock = listener
    n = SystemdNotifier(environ={"NOTIFY_SOCKET": path})
    assert not n.watchdog()
    assert receive_all(sock) == []


def test_everything_is_a_no_op_outside_systemd():
    n = SystemdNotifier(environ={})
    assert not n.enabled
    assert not n.ready("x")
    assert not n.watchdog()
    assert not n.status("x")
    assert not n.stopping()


def test_a_vanished_socket_does_not_raise(tmp_path, caplog):
    n = SystemdNotifier(environ={"NOTIFY_SOCKET": str(tmp_path / "gone.sock"), "WATCHDOG_USEC": "4000000"})
    assert not n.ready()
    assert not n.status("x")
    assert sum("cannot notify systemd" in r.message for r in caplog.records) == 1  # warned once, not per frame


def test_reads_the_real_environment(listener, monkeypatch):
    path, sock = listener
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    n = SystemdNotifier()
    assert n.watchdog_interval == 2.0
    assert n.watchdog()
    assert sock.recv(4096) == b"WATCHDOG=1"
