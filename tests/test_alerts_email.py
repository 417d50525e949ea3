"""E-mail against a real SMTP server on loopback (aiosmtpd): login, STARTTLS, rate limit, outage."""

from __future__ import annotations

import pytest

from maskgate.edge.config import Config

from alerts_helpers import SmtpServer, free_port, self_signed_cert, start_notifier, wait_until, write_secret

pytest.importorskip("aiosmtpd")


def email_config(port: int, **email) -> Config:
    return Config().replace(
        device={"name": "door1", "door_id": "front"},
        email={"enabled": True, "host": "127.0.0.1", "port": port, "starttls": False,
               "sender": "gate@example.com", "recipients": ["desk@example.com", "guard@example.com"],
               "min_interval_seconds": 0, "retry_max_seconds": 0.5, "timeout_seconds": 10, **email},
    )


def start(cfg, store, cleanup):
    return start_notifier(cfg, store, cleanup)


def uids(server):
    return [u for m in server.messages for u in m["X-Maskgate-Event-Uids"].split()]


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_one_mail_per_denied_visit_and_per_fault(tmp_path, store, cleanup):
    server = SmtpServer(users={"gate": "smtp-pw"}).start()
    cleanup(server.stop)
    cfg = email_config(server.port, username="gate", password_file=str(write_secret(tmp_path / "smtp.pw", "smtp-pw")))
    log, _ = start(cfg, store, cleanup)

    log.record("started", 0.0)
    first = log.record("denied", 1.0, decision="no_mask", p_mask=0.05, faces=1)
    wait_until(lambda: len(server.messages) == 1, what="the first mail")
    log.record("unlocked", 2.0, decision="masked")
    log.record("locked", 7.0)
    second = log.record("denied", 9.0, decision="mask_incorrect")
    wait_until(lambda: len(server.messages) == 2, what="the second mail")
    fault = log.record("fault", 10.0, detail="camera stalled")
    wait_until(lambda: len(server.messages) == 3, what="the fault mail")
    wait_until(lambda: store.cursor("email") == fault.seq, what="the cursor")

    assert uids(server) == [first.uid, second.uid, fault.uid]
    m1, m2, m3 = server.messages
    assert "Entry denied at front" in m1["Subject"] and "door1" in m1["Subject"]
    assert "no_mask" in m1.get_payload() and "p_mask 0.05" in m1.get_payload()
    assert "Fault at front: camera stalled" in m3["Subject"]
    assert server.envelopes[0].mail_from == "gate@example.com"
    assert server.envelopes[0].rcpt_tos == ["desk@example.com", "guard@example.com"]
    assert server.logins == ["gate"] * 3


def test_rate_limit_collects_a_digest(store, cleanup):
    server = SmtpServer().start()
    cleanup(server.stop)
    log, _ = start(email_config(server.port, min_interval_seconds=3), store, cleanup)

    first = log.record("denied", 1.0)
    wait_until(lambda: len(server.messages) == 1, what="the first mail, at once")
    burst = [log.record("denied", 2.0 + i) for i in range(3)] + [log.record("fault", 6.0, detail="relay")]
    wait_until(lambda: len(server.messages) == 2, what="the digest after the interval")
    digest = server.messages[1]
    assert "4 alerts" in digest["Subject"] and "3 denied" in digest["Subject"] and "1 fault" in digest["Subject"]
    assert uids(server) == [first.uid] + [e.uid for e in burst]


def test_starttls_with_login(tmp_path, store, cleanup):
    cert, key = self_signed_cert(tmp_path)
    server = SmtpServer(users={"gate": "smtp-pw"}, tls=(cert, key)).start()
    cleanup(server.stop)
    cfg = email_config(server.port, starttls=True, ca_file=str(cert), username="gate",
                       password_file=str(write_secret(tmp_path / "smtp.pw", "smtp-pw")))
    log, _ = start(cfg, store, cleanup)
    ev = log.record("denied", 1.0)
    wait_until(lambda: server.messages, what="the mail over STARTTLS")
    assert uids(server) == [ev.uid] and server.tls_sessions == [True] and server.logins == ["gate"]


def test_starttls_refuses_an_untrusted_certificate(tmp_path, store, cleanup, caplog):
    cert, key = self_signed_cert(tmp_path)
    server = SmtpServer(tls=(cert, key)).start()
    cleanup(server.stop)
    log, notifier = start(email_config(server.port, starttls=True), store, cleanup)  # system CAs only
    log.record("denied", 1.0)
    wait_until(lambda: "TLS with SMTP server" in caplog.text, what="a TLS failure")
    notifier.stop(0.5)
    assert server.messages == [] and store.cursor("email") == 0


def test_mail_server_down_then_back(store, cleanup):
    port = free_port()
    log, notifier = start(email_config(port), store, cleanup)
    events = [log.record("denied", 1.0), log.record("exit_request", 2.0), log.record("fault", 3.0, detail="camera")]
    server = SmtpServer(port=port)
    wait_until(lambda: notifier.channel("email").failing, what="a failed attempt")
    assert store.cursor("email") == 0  # nothing acknowledged while the server is down
    server.start()
    cleanup(server.stop)
    wait_until(lambda: store.cursor("email") == events[-1].seq, what="the backlog delivered")
    assert uids(server) == [events[0].uid, events[2].uid]


def test_stop_flushes_held_alerts(store, cleanup):
    server = SmtpServer().start()
    cleanup(server.stop)
    log, notifier = start(email_config(server.port, min_interval_seconds=3600), store, cleanup)
    log.record("denied", 1.0)
    wait_until(lambda: len(server.messages) == 1)
    held = log.record("denied", 2.0)
    wait_until(lambda: notifier.channel("email")._held, what="the alert held by the rate limit")
    notifier.stop(5)
    assert uids(server)[-1] == held.uid and store.cursor("email") == held.seq
