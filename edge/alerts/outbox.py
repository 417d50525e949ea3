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

A full disk: events the database could not store reach the channel directly
(:meth:`Channel.offer`, :mod:`.unstored`) and go out once the stored ones before them have; when they
are written later they are acknowledged without being delivered again.  A cursor that cannot be saved
is kept in memory (nothing is delivered twice in this run) and saved once the database can be written.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import threading
import time
from typing import Any

from maskgate.edge.alerts.unstored import UnstoredEvents
from maskgate.edge.events import Event, EventStore, EventStoreError
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
        self.unstored = UnstoredEvents(self.name)  # events the database could not store, delivered directly
        self._cursor = 0  # the last stored event acknowledged in this run, saved or not
        self._cursor_unsaved = False  # the database could not be written when it moved
        self._duplicates: set[str] = set()  # uids read from the database that already went out directly
        self._begin_failed = False  # begin() could not reach the database: it is tried again before each pass
        self._read_failed = False
        self.delivered = 0  # events delivered (or skipped for good) by this channel in this run

    # -- control, from any thread -------------------------------------------------------------- #

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name=f"maskgate-{self.name}", daemon=True)
        self._thread.start()

    def begin(self) -> None:
        """Give a channel seen for the first time a cursor at the end of the history
        (:meth:`EventStore.start_channel`; the notifier does this before starting it).  A database that cannot be
        written or opened now (a full disk) is asked again before each pass; until then only the events it could
        not store go out."""
        try:
            self._cursor = max(self._cursor, self.store.start_channel(self.name))
        except EventStoreError as exc:
            if not self._begin_failed:
                log.warning("%s: %s; trying again before each delivery", self.name, exc)
            self._begin_failed = True
            return
        self._begin_failed = False

    def wake(self) -> None:
        """Something new is in the outbox.  Only sets a flag: safe on the gate thread."""
        self._wake.set()

    def offer(self, event: Event) -> None:
        """An event the database could not store (no ``seq``): deliver it directly.  Safe on the gate thread."""
        self.unstored.put(event)
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
        events, more = self.next_events()
        for event in events:
            if final and self.time_left() <= 0:
                return True
            if not self.already_delivered(event):
                self._deliver_one(event)
                self.delivered += 1
            self.acknowledge([event])
        return more

    def next_events(self) -> tuple[list[Event], bool]:
        """What to deliver next, in order, and whether more may follow.

        The stored events after the cursor (``batch`` at most); once they are all read, the events the
        database could not store follow.  A database that cannot even be read does not hold those back.
        """
        if self._begin_failed:
            self.begin()
        if self._cursor_unsaved:
            self._save_cursor()
        stored: list[Event] = []
        if not self._begin_failed:
            try:
                stored = self.store.after(max(self.store.cursor(self.name), self._cursor), self.batch)
                self._read_failed = False
            except (sqlite3.Error, EventStoreError) as exc:
                if not self._read_failed:
                    log.warning("%s: cannot read the event database (%s); delivering what it could not store",
                                self.name, exc)
                self._read_failed = True
        self._duplicates = {e.uid for e in stored if self.unstored.reached_database(e)}
        if len(stored) == self.batch:
            return stored, True
        return [*stored, *self.unstored.waiting()], False

    def already_delivered(self, event: Event) -> bool:
        """A stored event that went out before the database could store it: acknowledge, do not deliver."""
        return event.seq is not None and event.uid in self._duplicates

    def acknowledge(self, events: list[Event]) -> None:
        """``events`` (from :meth:`next_events`, in order) are done: delivered, duplicates, or skipped for good."""
        stored = [e for e in events if e.seq is not None]
        self.unstored.sent([e for e in events if e.seq is None])
        if stored:
            self._cursor = max(self._cursor, stored[-1].seq)
            for event in stored:
                self.unstored.forget(event)
            self._save_cursor()

    def _save_cursor(self) -> None:
        try:
            self.store.ack(self.name, self._cursor)
        except EventStoreError as exc:
            if not self._cursor_unsaved:
                log.warning("%s: cannot save the delivery cursor (%s); kept in memory until it can be saved",
                            self.name, exc)
            self._cursor_unsaved = True
            return
        self._cursor_unsaved = False

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
