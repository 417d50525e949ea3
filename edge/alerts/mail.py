"""E-mail alerts: a mail for each ``denied`` visit and each ``fault``, rate-limited into digests.

The gate records one ``denied`` event per visit, so a mail per ``denied`` event is a mail per
refused visitor.  At most one mail goes out per ``email.min_interval_seconds``: the first alert is
mailed at once, and alerts that come in while the interval runs are mailed together, as one
digest, when it has passed.  Alerts that piled up during a mail-server outage likewise go out as
one digest.  Other events are acknowledged without a mail.

SMTP with STARTTLS (verified against the system's CAs or ``email.ca_file``) and a login when
``email.username`` is set; the password comes from ``email.password_file``.  STARTTLS that the
server does not offer is a failure (retried and logged), never a silent fallback to plain text.
"""

from __future__ import annotations

import logging
import math
import smtplib
import ssl
import time
from collections import Counter
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate

from maskgate.edge.alerts.discovery import node_id
from maskgate.edge.alerts.outbox import Channel, DeliveryFailed, EventRejected
from maskgate.edge.config import Config, EmailConfig
from maskgate.edge.events import Event, EventStore, is_storage_fault

log = logging.getLogger(__name__)

#: the event kinds that are mailed
MAIL_KINDS = frozenset({"denied", "fault"})
#: events listed one by one in a digest; the rest are counted
DIGEST_LIST_MAX = 50


def _when(event: Event) -> str:
    return datetime.fromtimestamp(event.wall_time).astimezone().isoformat(sep=" ", timespec="seconds")


def _describe(event: Event) -> str:
    parts = []
    if event.decision:
        parts.append(f"decision {event.decision}")
    if event.p_mask is not None and math.isfinite(event.p_mask):
        parts.append(f"p_mask {event.p_mask:.2f}")
    if event.faces is not None:
        parts.append(f"{event.faces} face(s)")
    if event.detail:
        parts.append(event.detail)
    return "; ".join(parts)


def compose(events: list[Event], email: EmailConfig, *, device: str, door: str) -> EmailMessage:
    """One alert mail for ``events`` (all of them mailable kinds): a single alert or a digest."""
    door = events[-1].door or door
    domain = f"maskgate.{node_id(device)}"
    msg = EmailMessage()
    msg["From"] = email.sender
    msg["To"] = ", ".join(email.recipients)
    msg["Date"] = formatdate(localtime=True)
    msg["X-Maskgate-Device"] = device
    lines: list[str] = []
    if len(events) == 1:
        (ev,) = events
        if ev.event == "denied":
            msg["Subject"] = f"[maskgate {device}] Entry denied at {door}"
            lines.append(f"A visitor was refused entry at {door} ({device}).")
        else:
            msg["Subject"] = f"[maskgate {device}] Fault at {door}: {ev.detail or 'see the gate log'}"
            lines.append(f"The gate at {door} ({device}) reported a fault; "
                         + ("it goes on deciding and driving its lock, and keeps the events it cannot write in "
                            "memory." if is_storage_fault(ev) else "its lock is held locked."))
        lines += ["", f"Time:    {_when(ev)}", f"Event:   {ev.event}"]
        if _describe(ev):
            lines.append(f"Details: {_describe(ev)}")
        lines.append(f"Id:      {ev.uid}")
        msg["Message-ID"] = f"<{ev.uid}@{domain}>"  # the same on a retry: servers may drop the repeat
    else:
        counts = Counter(ev.event for ev in events)
        summary = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
        msg["Subject"] = f"[maskgate {device}] {len(events)} alerts at {door}: {summary}"
        msg["Message-ID"] = f"<digest-{events[0].uid}-{len(events)}@{domain}>"
        lines.append(f"{len(events)} alerts from the gate at {door} ({device}) since the last mail: {summary}.")
        lines.append("")
        for ev in events[:DIGEST_LIST_MAX]:
            detail = _describe(ev)
            lines.append(f"{_when(ev)}  {ev.event:<7}{'  ' + detail if detail else ''}  [{ev.uid}]")
        if len(events) > DIGEST_LIST_MAX:
            lines.append(f"... and {len(events) - DIGEST_LIST_MAX} more (all are in the gate's event database).")
    msg["X-Maskgate-Event-Uids"] = " ".join(ev.uid for ev in events[:DIGEST_LIST_MAX])
    lines += ["", "-- ", "maskgate: mask-checking door gate. Alerts are limited to one mail per "
              f"{email.min_interval_seconds:g} s; later ones are collected into a digest."]
    msg.set_content("\n".join(lines) + "\n")
    return msg


class MailChannel(Channel):
    name = "email"
    batch = 1000

    def __init__(self, cfg: Config, store: EventStore, *, password: str | None):
        super().__init__(store, retry_max_seconds=cfg.email.retry_max_seconds)
        self.email = cfg.email
        self.device = cfg.device.name
        self.door = cfg.device.door_id
        self._password = password
        self._last_sent = -math.inf
        self._held = False  # alerts are waiting for the rate limit
        self.sent = 0  # mails sent in this run
        if cfg.email.username and not cfg.email.starttls:
            log.warning("email.username is set but email.starttls is off: the SMTP password crosses the network in clear")

    def _rate_wait(self) -> float:
        return self._last_sent + self.email.min_interval_seconds - time.monotonic()

    def idle_timeout(self) -> float | None:
        return max(0.05, self._rate_wait()) if self._held else None

    def deliver_pending(self, *, final: bool = False) -> bool:
        events, more = self.next_events()
        self._held = False
        if not events:
            return False
        alerts = [ev for ev in events if ev.event in MAIL_KINDS and not self.already_delivered(ev)]
        if alerts and not final and self._rate_wait() > 0:
            # Acknowledge what precedes the first alert; the alerts wait for the interval to pass.
            first = events.index(alerts[0])
            if first:
                self.acknowledge(events[:first])
            self._held = True
            return False
        if alerts:
            try:
                self._send(compose(alerts, self.email, device=self.device, door=self.door))
                self.sent += 1
                log.info("mailed %d alert(s) to %d recipient(s)", len(alerts), len(self.email.recipients))
            except EventRejected as exc:
                log.error("%s: the mail server refused the mail for %s for good, skipping it: %s",
                          self.name, ", ".join(ev.uid for ev in alerts[:5]), exc)
            self._last_sent = time.monotonic()
        self.acknowledge(events)
        self.delivered += len(events)
        return more

    def _send(self, msg: EmailMessage) -> None:
        e = self.email
        where = f"{e.host}:{e.port}"
        try:
            with smtplib.SMTP(e.host, e.port, timeout=e.timeout_seconds) as smtp:
                smtp.ehlo()
                if e.starttls:
                    context = ssl.create_default_context(cafile=e.ca_file or None)
                    smtp.starttls(context=context)
                    smtp.ehlo()
                if e.username:
                    smtp.login(e.username, self._password or "")
                refused = smtp.send_message(msg)
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryFailed(f"SMTP server {where} refused the login of {e.username!r}: {exc.smtp_code}") from None
        except smtplib.SMTPNotSupportedError as exc:
            raise DeliveryFailed(f"SMTP server {where}: {exc} (STARTTLS or AUTH not offered)") from None
        except smtplib.SMTPDataError as exc:
            if 500 <= exc.smtp_code < 600:
                raise EventRejected(f"{where} answered {exc.smtp_code} {exc.smtp_error!r}") from None
            raise DeliveryFailed(f"SMTP server {where} answered {exc.smtp_code}") from None
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryFailed(f"SMTP server {where} refused every recipient: {', '.join(exc.recipients)}") from None
        except ssl.SSLError as exc:
            raise DeliveryFailed(f"TLS with SMTP server {where} failed: {exc.reason or exc}") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryFailed(f"cannot send mail through {where}: {exc}") from None
        if refused:
            log.warning("the mail server refused some recipients: %s", ", ".join(refused))
