"""The delivery loop every channel shares: read the outbox in order, deliver, acknowledge, back off.

The outbox is the event database itself (:class:`~maskgate.edge.events.EventStore`): a channel
keeps a cursor, the id of the last event it delivered, and asks for what came after it.  A
:class:`Channel` runs that loop on its own thread, so the gate thread only ever sets a flag
(:meth:`Channel.wake`).

Failure rules, the same for every channel:

* :class:`DeliveryFailed` (server down, timeout, refused login, any unexpected error): the event is
  *not* acknowledged; the channel waits (capped exponential backoff) and tries the same event
  again.  Nothing is skipped because a server was down, so events go out in order once it is back.
* :class:`EventRejected`: the other side answered that *this event* can never be accepted (an HTTP
  400/413/415/422, an SMTP 5xx on the message data).  Retrying would block every later event
  forever, so the event is acknowledged and skipped with an error log line naming its uid; it stays
  in the database.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from typing import Any

from maskgate.edge.events import Event, EventStore
from maskgate.errors import MaskgateError

log = logging.getLogger(__name__)


class DeliveryFailed(MaskgateError, OSError):
    """A channel could not deliver an event now; it will try again."""


class EventRejected(MaskgateError, ValueError):
    """The receiver refused one event for good; the channel skips it (logged)."""


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def event_dict(event: Event) -> dict[str, Any]:
    """The event's versioned JSON object (:meth:`Event.to_json`), with NaN/inf turned into null."""
    return {k: _finite(v) for k, v in event.to_json().items()}


def event_bytes(event: Event) -> bytes:
    """The event as compact, key-sorted UTF-8 JSON: what MQTT and the webhook send (and sign)."""
    return json.dumps(event_dict(event), sort_keys=True, separators=(",", ":"), allow_nan=False).encode("utf-8")


class Backoff:
    """Capped exponential backoff: ``initial``, twice that, ... up to ``maximum`` seconds."""

    def __init__(self, maximum: float, initial: float = 1.0):
        self.maximum = float(maximum)
        self.initial = min(float(initial), self.maximum)
        self.failures = 0

    def next(self) -> float:
        delay = min(self.initial * (2 ** min(self.failures, 30)), self.maximum)
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0


class Channel:
    """One delivery channel: a background thread draining ``store.pending(name)`` in order.

    Subclasses implement :meth:`deliver` (one event; raise :class:`DeliveryFailed` or
    :class:`EventRejected`) or override :meth:`deliver_pending` to batch, and may use
    :meth:`open` / :meth:`close` (on the channel thread) and :meth:`tick` for periodic work.
    """

    #: cursor name in the store, also the thread name suffix
    name = "channel"
    #: events read from the outbox per pass
    batch = 100

    def __init__(self, store: EventStore, *, retry_max_seconds: float = 60.0):
        self.store = store
        self.backoff = Backoff(retry_max_seconds)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._deadline = math.inf
        self._thread: threading.Thread | None = None
        self._failing_since: float | None = None
        self.delivered = 0  # events acknowledged by this channel in this run

    # -- control, from any thread -------------------------------------------------------------- #

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name=f"maskgate-{self.name}", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Something new is in the outbox.  Only sets a flag: safe on the gate thread."""
        self._wake.set()

    def request_stop(self, deadline: float) -> None:
        """Ask the thread to flush what it can before ``deadline`` (``time.monotonic()``) and exit."""
        self._deadline = deadline
        self._stopping.set()
        self._wake.set()

    def join(self, timeout: float) -> bool:
        """Wait for the thread; True if it has ended."""
        if self._thread is None:
            return True
        self._thread.join(max(0.0, timeout))
        return not self._thread.is_alive()

    @property
    def failing(self) -> bool:
        """True between a failed delivery and the next successful pass."""
        return self._failing_since is not None

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def time_left(self) -> float:
        """Seconds until the stop deadline (infinite while running)."""
        return self._deadline - time.monotonic()

    # -- hooks ---------------------------------------------------------------------------------- #

    def open(self) -> None:
        """Called once on the channel thread before the loop."""

    def close(self) -> None:
        """Called once on the channel thread after the final flush; must not raise."""

    def ready(self) -> bool:
        """False while delivery is known to be impossible (MQTT: not connected)."""
        return True

    def wait_ready(self) -> None:
        """Block (interruptibly) while :meth:`ready` is False."""

    def idle_timeout(self) -> float | None:
        """How long to sleep when the outbox is empty (None: until woken)."""
        return None

    def tick(self) -> None:
        """Periodic work after each pass (telemetry)."""

    def deliver(self, event: Event) -> None:
        raise NotImplementedError

    # -- the loop --------------------------------------------------------------------------------- #

    def deliver_pending(self, *, final: bool = False) -> bool:
        """Deliver and acknowledge pending events in order; True if more may be pending."""
        events = self.store.pending(self.name, limit=self.batch)
        for event in events:
            if final and self.time_left() <= 0:
                return True
            self._deliver_one(event)
            self.store.ack(self.name, event.seq)
            self.delivered += 1
        return len(events) == self.batch

    def _deliver_one(self, event: Event) -> None:
        try:
            self.deliver(event)
        except EventRejected as exc:
            log.error("%s: skipping event %s (%s, seq %s) for good: %s", self.name, event.uid, event.event, event.seq, exc)

    def _run(self) -> None:
        try:
            self.open()
        except Exception:  # noqa: BLE001 - a channel that cannot open must not take the gate down
            log.exception("%s: cannot start delivery", self.name)
            self._finish()
            return
        while not self._stopping.is_set():
            self._wake.clear()
            more = False
            if self.ready():
                try:
                    more = self.deliver_pending()
                except Exception as exc:  # noqa: BLE001 - every failure means: wait, then retry
                    self._failed(exc)
                    self._stopping.wait(self.backoff.next())
                    continue
                self._recovered()
            else:
                self.wait_ready()
                continue
            try:
                self.tick()
            except Exception:  # noqa: BLE001
                log.exception("%s: periodic work failed", self.name)
            if not more:
                self._wake.wait(self.idle_timeout())
        self._finish()

    def _finish(self) -> None:
        if self.time_left() > 0:
            try:
                if self.ready():
                    while self.deliver_pending(final=True) and self.time_left() > 0:
                        pass
            except Exception as exc:  # noqa: BLE001
                log.warning("%s: could not deliver everything before stopping (%s); the rest goes out next run",
                            self.name, exc)
        try:
            self.close()
        except Exception:  # noqa: BLE001
            log.exception("%s: error while closing", self.name)
        try:
            self.store.close()  # this thread's own connection
        except Exception:  # noqa: BLE001
            pass

    def _failed(self, exc: Exception) -> None:
        if self._failing_since is None:
            self._failing_since = time.monotonic()
            if isinstance(exc, DeliveryFailed):
                log.warning("%s: delivery failed, will retry: %s", self.name, exc)
            else:
                log.exception("%s: unexpected error while delivering, will retry", self.name)
        else:
            log.debug("%s: still failing: %s", self.name, exc)

    def _recovered(self) -> None:
        if self._failing_since is not None:
            log.info("%s: delivering again after %.0f s of failures", self.name, time.monotonic() - self._failing_since)
            self._failing_since = None
        self.backoff.reset()
