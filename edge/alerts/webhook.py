"""Webhook: an HTTP POST of each event's JSON, in order, optionally signed with HMAC-SHA256.

Request: ``POST webhook.url`` with ``Content-Type: application/json`` and the body
:func:`~maskgate.edge.alerts.outbox.event_bytes` (the versioned event JSON, compact, keys sorted),
plus ``X-Maskgate-Event`` (the kind), ``X-Maskgate-Uid`` (unique per event: drop repeats) and, when
``webhook.secret_file`` is set, ``X-Maskgate-Signature: sha256=<hex HMAC-SHA256 of the body>``.

Any 2xx acknowledges the event.  400, 413, 415 and 422 mean the receiver can never accept this body:
the event is skipped with an error log line.  Everything else (connection refused, timeouts, 5xx,
401/403/404 from a misconfigured receiver, redirects, which are not followed) is retried with
backoff, so no event is lost while the receiver is down or being fixed.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import logging
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from maskgate import __version__
from maskgate.edge.alerts.outbox import Channel, DeliveryFailed, EventRejected, event_bytes
from maskgate.edge.config import Config
from maskgate.edge.events import Event, EventStore
from maskgate.errors import ConfigError

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Maskgate-Signature"
#: answers that mean "this body will never be accepted"
REJECTING_STATUS = frozenset({400, 413, 415, 422})


def sign(secret: bytes, body: bytes) -> str:
    """The signature header's value: ``sha256=`` and the hex HMAC-SHA256 of ``body``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, header: str | None) -> bool:
    """What a receiver does: recompute the signature and compare in constant time."""
    return header is not None and hmac.compare_digest(sign(secret, body), header)


def check_url(url: str, key: str = "webhook.url") -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(key, "must be an http:// or https:// URL with a host" + (f", got {parts.scheme}://..." if parts.scheme else ""))
    return url


def redacted(url: str) -> str:
    """``scheme://host:port`` only: webhook paths and queries often carry tokens."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}/..."


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D102 - urllib hook
        return None  # a POST is never silently turned into a GET elsewhere: the 3xx is an error


class WebhookChannel(Channel):
    name = "webhook"

    def __init__(self, cfg: Config, store: EventStore, *, secret: str | None):
        super().__init__(store, retry_max_seconds=cfg.webhook.retry_max_seconds)
        self.url = check_url(cfg.webhook.url)
        self.where = redacted(self.url)
        self.timeout = cfg.webhook.timeout_seconds
        self._secret = secret.encode("utf-8") if secret else None
        # Proxies from the environment are honoured (http_proxy / https_proxy / no_proxy).
        self._opener = urllib.request.build_opener(_NoRedirect)

    def request(self, event: Event) -> urllib.request.Request:
        body = event_bytes(event)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"maskgate/{__version__}",
            "X-Maskgate-Event": event.event,
            "X-Maskgate-Uid": event.uid,
        }
        if self._secret is not None:
            headers[SIGNATURE_HEADER] = sign(self._secret, body)
        return urllib.request.Request(self.url, data=body, headers=headers, method="POST")

    def deliver(self, event: Event) -> None:
        req = self.request(event)
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                resp.read(65536)
        except urllib.error.HTTPError as exc:
            code, reason = exc.code, exc.reason
            exc.close()
            if code in REJECTING_STATUS:
                raise EventRejected(f"{self.where} answered HTTP {code} {reason}") from None
            raise DeliveryFailed(f"{self.where} answered HTTP {code} {reason}") from None
        except urllib.error.URLError as exc:
            raise DeliveryFailed(f"cannot POST to {self.where}: {exc.reason}") from None
        except (OSError, http.client.HTTPException) as exc:
            raise DeliveryFailed(f"cannot POST to {self.where}: {exc!r}") from None
