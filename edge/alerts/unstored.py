"""Events the database could not store (a full disk), handed to a channel directly, and de-duplicated.

The outbox is the event database.  While it cannot be written, :class:`~maskgate.edge.events.EventLog`
keeps the events it could not store in memory and writes them, in order, once space returns; a channel
reading only the database would deliver nothing meanwhile — not even the storage ``fault`` that says so.
So the notifier also gives every channel each event announced without a ``seq`` (not stored), and the
channel delivers it from here once it has caught up with the database.  It remembers the uid: when the
event log writes the event later, the event reaches the outbox a second time, now with a ``seq``, and the
channel acknowledges it there without delivering it again.

Both collections are bounded.  An event dropped from :attr:`UnstoredEvents.waiting` beyond
:data:`WAITING_LIMIT` is not lost: it is still in the event log's memory and reaches the channel through
the database once space returns.  Only beyond :data:`SENT_LIMIT` uids delivered before space returns can
an event go out twice (with the same uid, as at-least-once delivery allows).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict

from maskgate.edge.events import Event, EventLog

log = logging.getLogger(__name__)

#: events waiting for a channel while the database cannot be written
WAITING_LIMIT = 1000
#: uids of events delivered from here and not yet seen in the database (as many as the event log keeps)
SENT_LIMIT = EventLog.UNSTORED_LIMIT


class UnstoredEvents:
    """One channel's queue of events that are not in the database, and the uids it delivered from it.

    :meth:`put` runs on the gate thread (an append under a lock, never blocking on I/O); the rest runs
    on the channel's thread.
    """

    def __init__(self, name: str, *, waiting_limit: int = WAITING_LIMIT, sent_limit: int = SENT_LIMIT):
        self.name = name
        self.waiting_limit = waiting_limit
        self.sent_limit = sent_limit
        self.dropped = 0  # events dropped from the queue (they reach the channel from the database later)
        self._lock = threading.Lock()
        self._waiting: OrderedDict[str, Event] = OrderedDict()
        self._sent: OrderedDict[str, None] = OrderedDict()

    def put(self, event: Event) -> None:
        """An event the database could not store: deliver it directly."""
        with self._lock:
            if len(self._waiting) >= self.waiting_limit:
                self._waiting.popitem(last=False)
                self.dropped += 1
                if self.dropped == 1:
                    log.warning("%s: more than %d events wait while the database cannot be written; the oldest "
                                "go out once it can", self.name, self.waiting_limit)
            self._waiting[event.uid] = event

    def waiting(self) -> list[Event]:
        """The events to deliver directly, oldest first."""
        with self._lock:
            return list(self._waiting.values())

    def sent(self, events: list[Event]) -> None:
        """``events`` (from :meth:`waiting`) went out: they no longer wait, and their uids are remembered."""
        with self._lock:
            for event in events:
                self._waiting.pop(event.uid, None)
                self._sent[event.uid] = None
            while len(self._sent) > self.sent_limit:
                self._sent.popitem(last=False)

    def reached_database(self, event: Event) -> bool:
        """``event`` was read from the database: it no longer waits here; True if it already went out."""
        with self._lock:
            self._waiting.pop(event.uid, None)
            return event.uid in self._sent

    def forget(self, event: Event) -> None:
        """``event``, read from the database, is acknowledged there: its uid is not needed any more."""
        with self._lock:
            self._sent.pop(event.uid, None)
