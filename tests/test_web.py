"""The installer's page over HTTP: tokens, roles, rate limit, CSRF, actions, the live view's cost.

A real gate replays a clip in real time with MockFactory pins and a real SQLite file; requests go
through a real socket.  The browser's view of the same page is tests/test_web_browser.py.
"""

from __future__ import annotations

import os
import ssl
import stat
import subprocess
import time
import urllib.request

import numpy as np
import pytest

from maskgate.democlip import Segment, write_clip
from maskgate.edge.model_files import DEFAULT_DETECTOR
from maskgate.edge.config import Config
from maskgate.edge.web.live import LIVE_LONG_SIDE, MIN_FACE_INK, LiveFrame, LiveView, render
from maskgate.edge.web.tokens import load_or_create, read_tokens
from maskgate.errors import ConfigError, WebError
from tests.conftest import need_tool
from tests.web_helpers import ADMIN, VIEWER, GateWithPage, http, web_config

LOCK_PIN = 17


@pytest.fixture(scope="module")
def empty_clip(tmp_path_factory, shared):
    return write_clip(tmp_path_factory.mktemp("clips") / "empty.avi", [Segment("empty", 8.0)],
                      encounters=shared / "data" / "encounters")


def relay_changes(factory) -> list[int]:
    states = [s.state for s in factory.pin(LOCK_PIN).states]
    return [k for i, k in enumerate(states) if i == 0 or k != states[i - 1]]


def test_first_start_writes_new_private_tokens_and_a_bad_file_is_an_error(tmp_path):
    path = tmp_path / "state" / "web-secret.toml"
    tokens = load_or_create(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert tokens.admin != tokens.viewer and len(tokens.admin) >= 16
    assert load_or_create(path) == tokens  # kept, not regenerated
    assert tokens.role_of(tokens.viewer) == "viewer" and tokens.role_of("x" * 30) is None and tokens.role_of("") is None
    path.write_text('admin = "short"\nviewer = "also-short"\n')
    with pytest.raises(WebError, match="web-secret.toml needs viewer .* at least 16 characters"):
        read_tokens(path)


def test_tls_needs_both_files_named_in_the_error():
    with pytest.raises(ConfigError, match="web.tls_key"):
        Config().replace(web={"tls_cert": "/etc/ssl/door.pem"})


def test_no_token_is_401_a_wrong_one_too_and_then_429(empty_clip, factory, tmp_path):
    cfg = web_config(tmp_path, web={"failures_per_minute": 3})
    with GateWithPage(cfg, empty_clip, factory) as g:
        for path in ("api/status", "api/events", "api/live.jpg"):
            status, headers, body = http("GET", g.url + path)
            assert status == 401 and "Bearer" in headers["WWW-Authenticate"], (path, status, body)
        # three failures from this address; the next request is refused even with the right token
        status, _, body = http("GET", g.url + "api/status", token=VIEWER)
        assert status == 429, body
        assert http("POST", g.url + "api/login", body={"token": ADMIN})[0] == 429
        # the page itself carries no data and loads without a token
        status, _, page = http("GET", g.url)
        assert status == 200 and b"Device token" in page


def test_viewer_sees_status_and_events_but_cannot_act(empty_clip, factory, tmp_path):
    cfg = web_config(tmp_path)
    with GateWithPage(cfg, empty_clip, factory) as g:
        status, _, st = http("GET", g.url + "api/status", token=VIEWER)
        assert status == 200
        assert st["lock"] == "locked" and st["device"] == cfg.device.name and st["door"] == cfg.device.door_id
        assert {m["file"] for m in st["models"]} == {DEFAULT_DETECTOR, "mask_classifier_int8.tflite"}
        assert all(len(m["sha256"]) == 12 for m in st["models"]) and st["min_face"] == cfg.detection.min_face
        assert st["uptime_s"] >= 0 and "fps" in st and "infer_ms" in st
        for action in ("pulse", "lock", "reload"):
            status, _, body = http("POST", g.url + f"api/actions/{action}", token=VIEWER)
            assert status == 403 and "admin" in body["error"], (action, body)
        status, _, ev = http("GET", g.url + "api/events?kind=started", token=VIEWER)
        assert status == 200 and [e["event"] for e in ev["events"]] == ["started"]
        assert http("GET", g.url + "api/events?kind=nonsense", token=VIEWER)[0] == 400
    assert set(relay_changes(factory)) == {0}  # nothing a viewer did moved the relay


def test_admin_relay_test_is_an_event_and_pulses_the_relay(empty_clip, factory, tmp_path):
    cfg = web_config(tmp_path)
    with GateWithPage(cfg, empty_clip, factory) as g:
        time.sleep(0.5)
        status, _, body = http("POST", g.url + "api/actions/pulse", token=ADMIN)
        assert status == 200, body
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            kinds = [e["event"] for e in http("GET", g.url + "api/events", token=ADMIN)[2]["events"]]
            if "locked" in kinds:
                break
            time.sleep(0.2)
        events = http("GET", g.url + "api/events", token=ADMIN)[2]["events"]
    kinds = [e["event"] for e in events]
    assert kinds[-3:] == ["locked", "unlocked", "remote_unlock"] or kinds[:3] == ["locked", "unlocked", "remote_unlock"], kinds
    remote = next(e for e in events if e["event"] == "remote_unlock")
    assert "web page, admin, 127.0.0.1: relay test" in remote["detail"]
    assert relay_changes(factory) == [0, 1, 0]


def test_a_session_cookie_needs_the_csrf_token_and_the_same_origin(empty_clip, factory, tmp_path):
    cfg = web_config(tmp_path, policy={"unlock_seconds": 60.0})
    with GateWithPage(cfg, empty_clip, factory) as g:
        status, headers, login = http("POST", g.url + "api/login", body={"token": ADMIN})
        assert status == 200 and login["role"] == "admin"
        cookie = headers["Set-Cookie"].split(";")[0]
        assert "HttpOnly" in headers["Set-Cookie"] and "SameSite=Strict" in headers["Set-Cookie"]
        assert http("GET", g.url + "api/status", headers={"Cookie": cookie})[0] == 200
        status, _, body = http("POST", g.url + "api/actions/lock", headers={"Cookie": cookie})
        assert status == 403 and "CSRF" in body["error"]
        status, _, body = http("POST", g.url + "api/actions/lock",
                               headers={"Cookie": cookie, "X-CSRF-Token": login["csrf"], "Origin": "http://evil.example"})
        assert status == 403 and "cross-origin" in body["error"]
        status, _, body = http("POST", g.url + "api/actions/lock", headers={"Cookie": cookie, "X-CSRF-Token": login["csrf"]})
        assert status == 200, body
        http("POST", g.url + "api/logout", headers={"Cookie": cookie, "X-CSRF-Token": login["csrf"]})
        assert http("GET", g.url + "api/status", headers={"Cookie": cookie})[0] == 401


def test_reload_validates_first_and_restarts_the_gate_with_the_new_config(empty_clip, factory, tmp_path, monkeypatch):
    import socket

    systemd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # as systemd listens on $NOTIFY_SOCKET
    systemd.bind(str(tmp_path / "notify.sock"))
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify.sock"))
    good, bad = tmp_path / "door.toml", tmp_path / "bad.toml"
    good.write_text("[policy]\nunlock_seconds = 9.0\n")
    bad.write_text("[policy]\nunlock_secondz = 9.0\n")
    cfg = web_config(tmp_path)
    with GateWithPage(cfg, empty_clip, factory) as g:
        g.web.config_paths = [str(bad)]
        status, _, body = http("POST", g.url + "api/actions/reload", token=ADMIN)
        assert status == 400 and "policy.unlock_secondz" in body["error"]
        assert g.gate.reload_config is None
        g.web.config_paths = [str(good)]
        status, _, body = http("POST", g.url + "api/actions/reload", token=ADMIN)
        assert status == 200, body
        g.wait(10)
        assert g.gate.reload_config is not None and g.gate.reload_config.policy.unlock_seconds == 9.0
    assert relay_changes(factory)[-1] == 0
    systemd.setblocking(False)
    told = []
    while True:
        try:
            told.append(systemd.recv(4096).decode().split("\n")[0])
        except BlockingIOError:
            break
    systemd.close()
    assert told[0] == "READY=1" and "RELOADING=1" in told and "STOPPING=1" not in told  # systemd keeps the unit


def test_nobody_watching_costs_the_gate_nothing_and_a_viewer_gets_at_most_live_fps(empty_clip, factory, tmp_path):
    cfg = web_config(tmp_path, web={"live_fps": 2.0})
    with GateWithPage(cfg, empty_clip, factory) as g:
        time.sleep(1.5)
        assert g.web.live.offered == 0 and not g.web.live.armed  # the gate never called the view
        t0 = time.monotonic()
        seqs = []
        while time.monotonic() - t0 < 3.0:
            status, headers, jpeg = http("GET", g.url + f"api/live.jpg?after={seqs[-1] if seqs else 0}", token=VIEWER)
            assert status == 200 and jpeg[:2] == b"\xff\xd8"
            seqs.append(int(headers["X-Frame-Seq"]))
        elapsed = time.monotonic() - t0
    assert seqs == sorted(seqs) and len(set(seqs)) >= 3
    assert g.web.live.offered <= 2.0 * elapsed + 2


def test_the_live_picture_shows_the_door_and_the_min_face_square(shared):
    import cv2

    image = cv2.imread(str(shared / "data" / "encounters" / "0010.jpg"))
    cfg = Config()
    frame = LiveFrame(1, image, (), "unlocked", "unlock", None)
    picture = render(frame, cfg)
    assert max(picture.shape[:2]) >= LIVE_LONG_SIDE
    ink = np.all(picture == np.array(MIN_FACE_INK, np.uint8), axis=2)
    ys, xs = np.nonzero(ink)
    assert len(xs) > 0 and xs.max() < picture.shape[1] // 3 and ys.min() > picture.shape[0] // 2  # bottom left
    view = LiveView(cfg)
    assert view.jpeg(0, timeout=0.05) is None and view.armed  # asking arms the view
    view.close()


def test_https_with_the_sites_certificate(empty_clip, factory, tmp_path):
    need_tool("openssl")
    cert, key = tmp_path / "door.pem", tmp_path / "door.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    cfg = web_config(tmp_path, web={"tls_cert": str(cert), "tls_key": str(key)})
    with GateWithPage(cfg, empty_clip, factory) as g:
        assert g.url.startswith("https://")
        ctx = ssl.create_default_context(cafile=str(cert))
        req = urllib.request.Request(g.url + "api/status", headers={"Authorization": f"Bearer {VIEWER}"})
        with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
            assert r.status == 200


def test_a_denied_visits_snapshot_is_listed_with_it_and_served(shared, factory, tmp_path):
    clip = write_clip(tmp_path / "unmasked.avi", [Segment("visitor", 3.0, "0012.jpg"), Segment("empty", 1.0)],
                      encounters=shared / "data" / "encounters")
    cfg = web_config(tmp_path, events={"snapshots": True, "snapshot_dir": str(tmp_path / "snaps")})
    with GateWithPage(cfg, clip, factory, paced=False) as g:
        g.wait(60)
        status, _, body = http("GET", g.url + "api/events?kind=denied", token=VIEWER)
        assert status == 200 and len(body["events"]) == 1, body
        name = body["events"][0]["snapshot"]
        status, headers, jpeg = http("GET", g.url + f"api/snapshot?name={name}", token=VIEWER)
        assert status == 200 and headers["Content-Type"] == "image/jpeg" and jpeg[:2] == b"\xff\xd8"
        assert http("GET", g.url + f"api/snapshot?name={name}")[0] == 401
        assert http("GET", g.url + "api/snapshot?name=denied_..%2F..%2Fweb-secret.toml.jpg", token=VIEWER)[0] == 404


def test_maskgate_run_web_serves_the_page_and_reloads_its_config(shared, tmp_path):
    """The command an installer runs: --web on a workstation, the page's reload restarts the gate, SIGTERM ends it."""
    import signal
    import sys

    clip = write_clip(tmp_path / "empty.avi", [Segment("empty", 30.0)], encounters=shared / "data" / "encounters")
    web_config(tmp_path)  # writes the tokens file
    conf = tmp_path / "door.toml"
    conf.write_text(f'[web]\nport = 0\nsecret_file = "{tmp_path / "web-secret.toml"}"\n'
                    f'[events]\ndatabase = "{tmp_path / "events.db"}"\n[gpio]\npin_factory = "mock"\n')
    proc = subprocess.Popen([sys.executable, "-m", "maskgate", "run", "--web", "--realtime", "--source", str(clip),
                             "--config", str(conf)], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        line = proc.stderr.readline()
        while line and "installer's page:" not in line:
            line = proc.stderr.readline()
        url = line.split("installer's page: ", 1)[1].split()[0]
        assert url.startswith("http://127.0.0.1:")
        assert http("GET", url + "api/status")[0] == 401
        deadline = time.monotonic() + 30
        while http("GET", url + "api/status", token=VIEWER)[2].get("fault") == "gate not running":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        status, _, body = http("POST", url + "api/actions/reload", token=ADMIN)
        assert status == 200, body
        line = proc.stderr.readline()
        while line and "reloading the config" not in line:
            line = proc.stderr.readline()
        assert "reloading the config" in line
        time.sleep(1.0)
        assert http("GET", url + "api/status", token=VIEWER)[0] == 200  # the page stayed up across the restart
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "lock de-energized" in err
