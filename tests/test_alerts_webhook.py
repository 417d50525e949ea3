"""Webhook against a local http.server: signed posts in order, retries, rejects, receiver outage."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from maskgate.edge.config import Config

from alerts_helpers import WebhookServer, drop_proxies, free_port, start_notifier, wait_until, write_secret


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    drop_proxies(monkeypatch)


def start(port, store, cleanup, **webhook):
    cfg = Config().replace(
        device={"name": "door1", "door_id": "front"},
        webhook={"enabled": True, "url": f"http://127.0.0.1:{port}/hooks/gate", "retry_max_seconds": 0.5,
                 "timeout_seconds": 5, **webhook},
    )
    return start_notifier(cfg, store, cleanup)


def test_signed_posts_in_order(tmp_path, store, cleanup):
    server = WebhookServer().start()
    cleanup(server.stop)
    key = "a-long-random-hmac-key"
    log, _ = start(server.port, store, cleanup, secret_file=str(write_secret(tmp_path / "hook.key", key)))
    events = [log.record("started", 0.0), log.record("denied", 1.0, decision="no_mask", p_mask=0.1),
              log.record("unlocked", 2.0, decision="masked"), log.record("locked", 7.0)]
    wait_until(lambda: len(server.accepted()) == 4, what="four posts")
    for (headers, body), ev in zip(server.accepted(), events):
        expected = "sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
        assert headers["X-Maskgate-Signature"] == expected
        assert headers["Content-Type"] == "application/json"
        assert headers["X-Maskgate-Uid"] == ev.uid and headers["X-Maskgate-Event"] == ev.event
        assert json.loads(body) == ev.to_json()
    assert server.requests[0][1] == "/hooks/gate"


def test_unsigned_when_no_secret(store, cleanup):
    server = WebhookServer().start()
    cleanup(server.stop)
    log, _ = start(server.port, store, cleanup)
    log.record("denied", 1.0)
    wait_until(lambda: server.accepted(), what="a post")
    assert "X-Maskgate-Signature" not in server.accepted()[0][0]


def test_retries_server_errors_and_skips_rejected_events(store, cleanup, caplog):
    server = WebhookServer().start()
    cleanup(server.stop)
    server.answers = [503, 500, 200, 400]  # first event: two failures then OK; second: rejected for good
    log, _ = start(server.port, store, cleanup)
    events = [log.record("denied", float(i)) for i in range(4)]
    wait_until(lambda: store.cursor("webhook") == events[-1].seq, what="all handled")
    assert [b["uid"] for b in server.bodies()] == [events[0].uid, events[2].uid, events[3].uid]
    assert [code for code, *_ in server.requests] == [503, 500, 200, 400, 200, 200]
    assert events[1].uid in caplog.text and "skipping" in caplog.text


def test_receiver_down_then_back(store, cleanup):
    port = free_port()
    log, notifier = start(port, store, cleanup)
    events = [log.record("denied", float(i)) for i in range(5)]
    wait_until(lambda: notifier.channel("webhook").failing, what="a failed post")
    events += [log.record("fault", 9.0, detail="camera")]
    server = WebhookServer(port=port).start()
    cleanup(server.stop)
    wait_until(lambda: len(server.accepted()) == 6, what="the backlog")
    assert [b["uid"] for b in server.bodies()] == [e.uid for e in events]
